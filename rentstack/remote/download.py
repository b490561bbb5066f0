"""The laptop side of a weights download: which command to run on the host, and what it said.

The download itself is ``scripts/fetch_weights.py``, copied to the host and run there with
the host's own python3 (an AutoDL instance booted without GPU has nothing else). This module
is pure: it builds that command line for a model source, names the model directory on the
data disk, and parses the script's one-line JSON summary and its manifest. The executor
(Fabric) uploads the script, runs the command and hands the output back here.
"""

from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from rentstack.errors import RentstackError

SCRIPT_PATH = Path(__file__).resolve().parents[2] / "scripts" / "fetch_weights.py"
"""The downloader in this checkout, to upload to the host."""

DEFAULT_DATA_DIR = "/root/autodl-tmp"
DEFAULT_EXCLUDE: tuple[str, ...] = ("*.pth",)
"""The seed skipped PyTorch pickles: vLLM loads safetensors, and .pth files double the download."""

MANIFEST_NAME = ".rentstack-manifest.json"
TOKEN_ENV = {"modelscope": "MODELSCOPE_API_TOKEN", "hf": "HF_TOKEN"}
HF_MIRROR = "https://hf-mirror.com"

EXIT_MEANING = {
    1: "the download failed",
    2: "the download was asked for something impossible",
    3: "the hub refused",
    4: "the hub could not be reached",
    5: "a downloaded file failed its checksum",
    6: "the data disk is too small",
    7: "another download is running into the same directory",
}


def remote_script(data_dir: str = DEFAULT_DATA_DIR) -> str:
    """Where the executor uploads fetch_weights.py: on the data disk, beside rentstack's state."""
    return str(PurePosixPath(data_dir) / ".rentstack" / "fetch_weights.py")


def _scheme_ref(source: Any) -> tuple[str, str]:
    """('modelscope', 'Qwen/Qwen3-8B') from 'modelscope:Qwen/Qwen3-8B' or a catalog Source."""
    if hasattr(source, "scheme") and hasattr(source, "ref"):
        return str(source.scheme), str(source.ref)
    scheme, sep, ref = str(source).partition(":")
    if not sep or not ref:
        raise RentstackError(f"model source {source!r} has no scheme; write modelscope:ORG/NAME, hf:ORG/NAME or local:/path")
    return scheme, ref


def model_dir(source: Any, data_dir: str = DEFAULT_DATA_DIR) -> str:
    """The model directory on the host: DATA_DIR/models/<repo name, lower-cased> for a hub
    source (the same name as ``Source.dirname``), or the path itself for ``local:``."""
    scheme, ref = _scheme_ref(source)
    if scheme == "local":
        return ref
    name = PurePosixPath(ref.rstrip("/")).name.lower()
    return str(PurePosixPath(data_dir) / "models" / name)


@dataclass(frozen=True)
class FetchCommand:
    """What to run on the host to put one model's weights in place."""

    source: Literal["modelscope", "hf"]
    model_id: str
    model_dir: str
    argv: tuple[str, ...]
    """python3 fetch_weights.py ... --json: no token, ever (tokens travel in the environment)."""
    token_env: str
    """The variable the script reads a token from (MODELSCOPE_API_TOKEN or HF_TOKEN)."""
    token_file: str | None = None

    @property
    def command(self) -> str:
        """The shell line. With a token file on the host, the token is read into the
        environment by the remote shell, so it never appears in any process's argv."""
        line = shlex.join(self.argv)
        if self.token_file:
            return f'{self.token_env}="$(cat {shlex.quote(self.token_file)})" {line}'
        return line

    @property
    def check_space_command(self) -> str:
        """The same download, listing only: prints bytes still needed and free space, exits 6 if short."""
        return shlex.join((*self.argv, "--check-space"))


def fetch_command(
    source: Any,
    *,
    data_dir: str = DEFAULT_DATA_DIR,
    script: str | None = None,
    python: str = "python3",
    hf_endpoint: str | None = HF_MIRROR,
    modelscope_endpoint: str | None = None,
    revision: str | None = None,
    include: tuple[str, ...] = (),
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE,
    workers: int = 4,
    token_file: str | None = None,
) -> FetchCommand | None:
    """The fetch_weights.py command for a model source, or None when there is nothing to
    download (``local:`` and ``builtin:`` weights are already on the host).

    ``hf_endpoint`` defaults to the hf-mirror.com mirror (huggingface.co is not reachable
    from mainland China); pass "https://huggingface.co" for the real hub.
    ``modelscope_endpoint`` None means the script's default (www.modelscope.cn).
    ``script`` defaults to ``remote_script(data_dir)``.
    """
    scheme, ref = _scheme_ref(source)
    if scheme in ("local", "builtin"):
        return None
    if scheme not in TOKEN_ENV:
        raise RentstackError(f"model source {scheme!r} cannot be downloaded; use modelscope:, hf: or local:")
    if workers < 1 or workers > 32:
        raise RentstackError(f"download workers {workers} is out of range; use 1 to 32 (4 suits most links)")
    endpoint = hf_endpoint if scheme == "hf" else modelscope_endpoint
    directory = model_dir(source, data_dir)
    argv = [python, script or remote_script(data_dir), "--source", scheme, "--model", ref, "--dest", directory, "--workers", str(workers), "--json"]
    if endpoint:
        argv += ["--endpoint", endpoint]
    if revision:
        argv += ["--revision", revision]
    for pattern in include:
        argv += ["--include", pattern]
    for pattern in exclude:
        argv += ["--exclude", pattern]
    return FetchCommand(scheme, ref, directory, tuple(argv), TOKEN_ENV[scheme], token_file)  # type: ignore[arg-type]


@dataclass(frozen=True)
class FetchSummary:
    """The JSON line fetch_weights.py prints last."""

    ok: bool
    exit_code: int
    model: str = ""
    files: int = 0
    files_downloaded: int = 0
    files_skipped: int = 0
    bytes_total: int = 0
    bytes_transferred: int = 0
    bytes_skipped: int = 0
    bytes_resumed: int = 0
    bytes_needed: int = 0
    free_bytes: int = 0
    fits: bool | None = None
    complete: bool = False
    seconds: float = 0.0
    error: str = ""
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def nothing_transferred(self) -> bool:
        """The weights were already present and verified: the step was a no-op."""
        return self.ok and self.bytes_transferred == 0 and self.files_downloaded == 0

    def describe(self) -> str:
        """One line for the step report."""
        if not self.ok:
            return f"weights: {self.error or EXIT_MEANING.get(self.exit_code, 'failed')}"
        if self.fits is not None and not self.files_downloaded and not self.bytes_transferred and "bytes_needed" in self.raw:
            return f"weights: {_gib(self.bytes_needed)} GiB still to download, {_gib(self.free_bytes)} GiB free"
        if self.nothing_transferred:
            return f"weights present, sha256 ok — skipped ({self.files} files, {_gib(self.bytes_total)} GiB)"
        rate = self.bytes_transferred / self.seconds / 1e6 if self.seconds else 0.0
        resumed = f", resumed {_gib(self.bytes_resumed)} GiB" if self.bytes_resumed else ""
        return (f"weights downloaded: {self.files_downloaded} files, {_gib(self.bytes_transferred)} GiB in"
                f" {self.seconds:.0f} s ({rate:.1f} MB/s){resumed}; {self.files_skipped} already present")

    def raise_for_error(self) -> FetchSummary:
        """Raise the script's own one-line error as a RentstackError; return self when ok."""
        if not self.ok:
            meaning = EXIT_MEANING.get(self.exit_code, "the download failed")
            hint = {4: " — a re-run resumes where it stopped", 6: " — grow the data disk or exclude files"}.get(self.exit_code, "")
            raise RentstackError(f"{meaning}: {self.error}{hint}")
        return self


def _gib(n: int) -> str:
    return f"{n / 1024**3:.2f}"


def parse_summary(stdout: str, exit_code: int | None = None) -> FetchSummary:
    """Parse the last JSON line of fetch_weights.py's stdout (progress goes to stderr)."""
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                data = json.loads(line)
            except ValueError:
                continue
            if isinstance(data, dict) and "exit_code" in data:
                known = {k: data[k] for k in FetchSummary.__dataclass_fields__ if k in data and k != "raw"}
                return FetchSummary(**known, raw=data)
    code = exit_code if exit_code is not None else 1
    tail = stdout.strip().splitlines()[-1:] or ["no output"]
    hint = " (is python3 installed on the host?)" if code in (126, 127) else ""
    raise RentstackError(f"fetch_weights.py printed no summary (exit {code}): {tail[0][:200]}{hint}")


@dataclass(frozen=True)
class Manifest:
    """DEST/.rentstack-manifest.json: what the last run found present and verified."""

    model: str
    revision: str
    complete: bool
    files: int
    bytes_total: int
    exclude: tuple[str, ...] = ()
    include: tuple[str, ...] = ()


def manifest_command(directory: str) -> str:
    """Read the manifest without python (cat); a missing one prints nothing."""
    return f"cat {shlex.quote(str(PurePosixPath(directory) / MANIFEST_NAME))} 2>/dev/null || true"


def parse_manifest(text: str) -> Manifest | None:
    """The manifest's headline, or None when absent or unreadable (then: not downloaded)."""
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("files"), dict):
        return None
    return Manifest(
        model=str(data.get("model", "")),
        revision=str(data.get("revision", "")),
        complete=bool(data.get("complete")),
        files=len(data["files"]),
        bytes_total=int(data.get("bytes_total") or 0),
        exclude=tuple(data.get("exclude") or ()),
        include=tuple(data.get("include") or ()),
    )
