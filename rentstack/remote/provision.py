"""Provisioning one host: facts -> a plan of steps -> act -> verify.

``HostRun`` holds one connected host and the user's options. Its ``*_steps`` methods build
the step lists the fab tasks run (provision = disk + caches + weights + runtime + render +
server; download and up are slices of it). Each step's check is read-only and names why
it can be skipped; the state file on the host records finished steps and their inputs.
The laptop side renders everything (rentstack.render) and only uploads files.
"""

from __future__ import annotations

import hashlib
import os
import shlex
from collections.abc import Callable
from functools import cached_property
from pathlib import Path

from rentstack.errors import RentstackError
from rentstack.remote import download, runners
from rentstack.remote.connection import Remote, free_local_port, tunnel_line
from rentstack.remote.facts import HostFacts, gather
from rentstack.remote.layout import GIB, Layout, cache_env, check_space, env_sh_text, parse_df_size, source_line, space_need
from rentstack.remote.options import InputError, Options, replace_sets  # noqa: F401 (re-exported)
from rentstack.remote.host_state import HostState, checksum, parse_state, state_path
from rentstack.remote.steps import RunReport, Step, StopRun
from rentstack.render import Deployment, build_deployment, image_for
from rentstack.render.artifacts import tier_files
from rentstack.render.secrets import SECRETS_FILE, new_api_key, parse_api_key
from rentstack.config import CatalogModel, Tier, load_tier, resolve_model
from rentstack.start import calibrate
from rentstack.verify import ready_lines, smoke, smoke_line

REPO = Path(__file__).resolve().parents[2]
LOCAL_MODELS = REPO / "models"
SHM_MIN_BYTES = 512 * 2**20
"""vLLM 0.32 asked for 160 MiB of /dev/shm with one CPU worker; leave room for more."""
NO_GPU_STOP = "no GPU on this host (nvidia-smi sees none): boot the instance with its GPU, then run `fab up`"


def resolve_inputs(opts: Options) -> tuple[Tier, CatalogModel]:
    """Tier and model, validated before any connection: a typo fails with one line, nothing written."""
    try:
        tier = load_tier(opts.tier)
        return tier, resolve_model(opts.model or tier.model)
    except InputError:
        raise
    except RentstackError as exc:
        raise InputError(str(exc)) from None


def host_tier(tier: Tier, facts: HostFacts) -> Tier:
    """The tier with the GPU count, memory and free memory this host reports (item 6: plan
    with real numbers, not the tier's nominal ones). CPU tiers are returned unchanged."""
    if tier.accelerator == "cpu":
        return tier
    if not facts.gpus:
        raise RentstackError(f"tier {tier.name} needs {tier.gpu.count} GPU(s) but this host has none "
                             "(nvidia-smi sees no GPU): boot the instance with its GPU, or use --tier cpu")
    if len(facts.gpus) < tier.gpu.count:
        raise RentstackError(f"tier {tier.name} needs {tier.gpu.count} GPUs but this host has {len(facts.gpus)} "
                             f"({facts.gpus[0].name}): pick a tier for {len(facts.gpus)} GPU(s)")
    used = facts.gpus[: tier.gpu.count]
    total = min(g.memory_total_mib for g in used) / 1024
    frees = [g.memory_free_mib for g in used if g.memory_free_mib is not None]
    free = min(frees) / 1024 if len(frees) == len(used) else None
    gpu = tier.gpu.model_copy(update={"name": used[0].name, "memory_gib": round(total, 2),
                                      "free_gib": round(min(free, total), 2) if free else None})
    return tier.model_copy(update={"gpu": gpu})


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class HostRun:
    """One host, connected, with its facts, state and the steps for the fab tasks."""

    def __init__(self, remote: Remote, opts: Options, echo: Callable[[str], None] = print) -> None:
        self.remote = remote
        self.opts = opts
        self.echo = echo
        self.tier, self.model = resolve_inputs(opts)
        self.layout = Layout(opts.data_dir)
        self.sets = dict(opts.sets)
        self.grown = False
        self.last_log = ""

    # ----------------------------------------------------------------- reads

    @cached_property
    def facts(self) -> HostFacts:
        return gather(self.remote.run, self.opts.data_dir)

    @cached_property
    def state(self) -> HostState:
        text = self.remote.read(state_path(self.opts.data_dir))
        return parse_state(text or "")

    def save_state(self) -> None:
        self.remote.write(state_path(self.opts.data_dir), self.state.dumps(), 0o600)

    def record(self, name: str, digest: str, detail: str) -> str:
        self.state.record(name, digest, detail)
        self.save_state()
        return detail

    @property
    def runner(self) -> str:
        return self.opts.runner or self.facts.runner

    def require_data_dir(self) -> None:
        if self.facts.data_disk is None:
            raise RentstackError(f"{self.opts.data_dir} does not exist on {self.remote.spec.label}: "
                                 "pass --data-dir with the host's data disk (AutoDL: /root/autodl-tmp)")

    def free_bytes(self) -> tuple[int, str]:
        """Free bytes on the data disk now, plus what growing the filesystem will add (and a note)."""
        out = self.remote.check(f"df -B1 --output=size,avail -- {shlex.quote(self.opts.data_dir)}", "df")
        size, avail = (int(x) for x in out.strip().splitlines()[-1].split())
        disk = self.facts.data_disk
        if disk and disk.needs_grow and not self.grown and disk.device and disk.device.size_bytes > size + 16 * 1024 * 1024:
            extra = disk.device.size_bytes - size
            return avail + extra, f" after growing the filesystem by {extra / GIB:.2f} GiB"
        return avail, ""

    # ----------------------------------------------------------------- disk

    def step_grow(self) -> Step:
        def check() -> str | None:
            self.require_data_dir()
            disk = self.facts.data_disk
            size = disk.mount.size_bytes / GIB
            if disk.needs_grow is None:
                return f"{disk.mount.source} is not a block device this host can see ({size:.1f} GiB) — skipped"
            if not disk.needs_grow:
                return f"filesystem fills {disk.mount.source} ({size:.1f} GiB) — skipped"
            return None

        def act() -> str:
            disk = self.facts.data_disk
            dev, mnt, fstype = disk.mount.source, disk.mount.target, disk.mount.fstype
            before = disk.mount.size_bytes
            size_cmd = f"df -B1 --output=size -- {shlex.quote(mnt)}"
            if fstype == "xfs":
                self.remote.check(f"xfs_growfs {shlex.quote(mnt)}", "xfs_growfs")
            elif fstype.startswith("ext"):
                self.remote.run(f"resize2fs {shlex.quote(dev)}")
            else:
                raise RentstackError(f"{mnt} is {fstype}: grow it by hand (rentstack grows ext4 and xfs)")
            after = parse_df_size(self.remote.check(size_cmd, "df"))
            how = "online"
            if after <= before + 16 * 1024 * 1024 and fstype.startswith("ext"):
                # Online growth can report success and leave the size alone (seen on loop
                # devices): unmount, check and resize offline, mount again.
                d, m = shlex.quote(dev), shlex.quote(mnt)
                self.remote.check(f"umount {m} && e2fsck -f -y {d} >/dev/null; resize2fs {d} && mount {d} {m}",
                                  f"offline resize of {dev} (is something using {mnt}?)")
                after = parse_df_size(self.remote.check(size_cmd, "df"))
                how = "offline (e2fsck + resize2fs)"
            if after <= before + 16 * 1024 * 1024:
                raise RentstackError(f"{mnt} did not grow ({before / GIB:.2f} GiB before and after): "
                                     f"run resize2fs {dev} by hand and check with df")
            self.grown = True
            return f"grew {mnt} from {before / GIB:.2f} to {after / GIB:.2f} GiB ({how})"

        return Step("disk: grow", f"grow {self.opts.data_dir} to its block device's size", act, check)

    def weights_present(self) -> bool:
        return self.state.done(self.weights_key, self.weights_digest)

    def runtime_present(self) -> bool:
        if self.runner == "compose":
            return self.remote.run(f"docker image inspect {shlex.quote(image_for(self.tier))} >/dev/null 2>&1")[0] == 0
        return "runtime" in self.state.steps

    def step_space(self, runtime: bool = True) -> Step:
        def check() -> str | None:
            self.require_data_dir()
            need = space_need(self.model.weights_gib, accelerator=self.tier.accelerator, runner=self.runner,
                              weights_present=self.weights_present(),
                              runtime_present=(not runtime) or self.runtime_present())
            free, note = self.free_bytes()
            return check_space(need, free, self.opts.data_dir, note)

        return Step("disk: space", "compare free space with weights + runtime + caches + margin", lambda: "", check)

    def step_caches(self) -> Step:
        text = env_sh_text(self.layout)
        digest = checksum(text)
        line = source_line(self.layout)
        rc_files = ("~/.bashrc", "~/.profile")

        def check() -> str | None:
            if self.state.done("caches", digest):
                code, _ = self.remote.run(f"grep -qxF {shlex.quote(line)} ~/.bashrc")
                if code == 0:
                    return "pip/HF/ModelScope caches already point at the data disk — skipped"
            return None

        def act() -> str:
            self.remote.write(self.layout.env_sh, text)
            for rc in rc_files:
                self.remote.check(f"touch {rc} && (grep -qxF {shlex.quote(line)} {rc} || echo {shlex.quote(line)} >> {rc})",
                                  f"editing {rc}")
            self.remote.check(f"mkdir -p {shlex.quote(self.layout.cache)}", "mkdir cache")
            return self.record("caches", digest, f"caches on the data disk ({self.layout.env_sh}, sourced from ~/.bashrc)")

        return Step("caches", "put pip/HF/ModelScope caches on the data disk", act, check)

    # ----------------------------------------------------------------- docker

    def step_docker(self) -> Step:
        gpu = self.tier.accelerator == "gpu"

        def check() -> str | None:
            f = self.facts
            if self.runner != "compose":
                return "native runner (this host is a container without Docker) — skipped"
            if f.docker_usable and (not gpu or f.nvidia_container_ready):
                return f"Docker {f.docker.server_version} and Compose {f.compose_version} answer — skipped"
            if f.container.is_container and not f.docker.reachable:
                raise RentstackError("this host is a container without Docker: Docker cannot be installed here; "
                                     "use the native runner (--runner native)")
            if not f.os.is_debian_family:
                raise RentstackError(f"Docker is missing and {f.os.pretty_name or 'this OS'} is not Debian/Ubuntu: "
                                     "install Docker Engine and Compose v2 by hand, then re-run")
            return None

        def act() -> str:
            remote_script = f"{self.layout.home}/prepare-host.sh"
            self.remote.write(remote_script, runners.PREPARE_HOST_SCRIPT.read_text(), 0o755)
            if not self.facts.docker.cli_installed:
                # A fresh engine keeps its images on the data disk, not the small system disk.
                daemon = '{"data-root": "%s"}' % self.layout.docker_root
                self.remote.run(f"mkdir -p /etc/docker && [ -f /etc/docker/daemon.json ] || "
                                f"echo {shlex.quote(daemon)} > /etc/docker/daemon.json")
            out = self.remote.check(f"bash {shlex.quote(remote_script)}{' --gpu' if gpu else ''}",
                                    "host preparation (scripts/prepare-host.sh)", timeout=1800)
            return out.strip().splitlines()[-1] if out.strip() else "Docker prepared"

        return Step("host: docker", "install Docker Engine + Compose (+ NVIDIA toolkit for GPU tiers)", act, check)

    # ----------------------------------------------------------------- weights

    @cached_property
    def local_model_dir(self) -> Path | None:
        if self.model.source.scheme != "builtin":
            return None
        return LOCAL_MODELS / self.model.source.dirname

    @cached_property
    def local_files(self) -> list[tuple[str, int, int]]:
        d = self.local_model_dir
        if d is None:
            return []
        if not d.is_dir():
            # The offline model is made on this machine (from PyPI's GGUF) and uploaded.
            from rentstack.local.models import ensure_model
            ensure_model(self.model, LOCAL_MODELS)
        return sorted((str(p.relative_to(d)), p.stat().st_size, p.stat().st_mtime_ns)
                      for p in d.rglob("*") if p.is_file())

    @cached_property
    def fetch(self) -> download.FetchCommand | None:
        return download.fetch_command(self.model.source, data_dir=self.opts.data_dir,
                                      hf_endpoint=self.opts.hf_endpoint, modelscope_endpoint=self.opts.endpoint,
                                      exclude=tuple(self.model.exclude))

    @property
    def remote_model_dir(self) -> str:
        if self.model.source.scheme == "local":
            return self.model.source.ref
        return f"{self.layout.models}/{self.model.source.dirname}"

    def key(self, step: str) -> str:
        """State key of a per-tier step ("render:cpu"): tiers on one host are independent."""
        return f"{step}:{self.tier.name}"

    @property
    def weights_key(self) -> str:
        """One state entry per model directory: several models can share a data disk."""
        return f"weights:{self.remote_model_dir}"

    @cached_property
    def weights_digest(self) -> str:
        if self.local_model_dir is not None:
            return checksum("builtin", self.local_files)
        if self.fetch is not None:
            return checksum(str(self.model.source), self.fetch.argv)
        return checksum("local", self.model.source.ref)

    def step_weights(self) -> Step:
        scheme = self.model.source.scheme
        summary = {"builtin": f"upload {self.model.name} from this machine to {self.remote_model_dir}",
                   "local": f"use {self.remote_model_dir} on the host"}.get(
            scheme, f"download {self.model.source} to {self.remote_model_dir} (verified, resumable)")
        return Step("weights", summary, self._weights_act, self._weights_check)

    def _remote_sizes(self, directory: str, names: list[str]) -> dict[str, int]:
        cmd = f"cd {shlex.quote(directory)} 2>/dev/null && stat -c '%s %n' -- {' '.join(shlex.quote(n) for n in names)} 2>/dev/null; true"
        _, out = self.remote.run(cmd)
        sizes = {}
        for line in out.splitlines():
            size, _, name = line.partition(" ")
            if size.isdigit():
                sizes[name] = int(size)
        return sizes

    def _weights_check(self) -> str | None:
        scheme = self.model.source.scheme
        if scheme == "local":
            code, _ = self.remote.run(f"test -f {shlex.quote(self.remote_model_dir + '/config.json')}")
            if code != 0:
                raise RentstackError(f"{self.remote_model_dir}/config.json is missing on the host: "
                                     "local: models must already be there")
            return f"local model at {self.remote_model_dir} — nothing to download"
        if not self.state.done(self.weights_key, self.weights_digest):
            return None
        if scheme == "builtin":
            names = [n for n, _, _ in self.local_files]
            remote = self._remote_sizes(self.remote_model_dir, names)
            if all(remote.get(n) == s for n, s, _ in self.local_files):
                total = sum(s for _, s, _ in self.local_files)
                return f"weights present, sha256 ok — skipped ({len(names)} files, {total / GIB:.2f} GiB)"
            return None
        manifest = download.parse_manifest(self.remote.run(download.manifest_command(self.remote_model_dir))[1])
        if manifest and manifest.complete:
            return (f"weights present, sha256 ok — skipped ({manifest.files} files, "
                    f"{manifest.bytes_total / GIB:.2f} GiB)")
        return None

    def _weights_act(self) -> str:
        if self.local_model_dir is not None:
            return self.record(self.weights_key, self.weights_digest, self._upload_model())
        assert self.fetch is not None
        script = download.remote_script(self.opts.data_dir)
        text = download.SCRIPT_PATH.read_text()
        current = self.remote.run(f"sha256sum {shlex.quote(script)} 2>/dev/null")[1].split()[:1]
        if current != [hashlib.sha256(text.encode()).hexdigest()]:
            self.remote.write(script, text, 0o755)
        env_prefix = f". {shlex.quote(self.layout.env_sh)} 2>/dev/null; "
        code, out = self.remote.run(env_prefix + self.fetch.command, timeout=6 * 3600)
        summary = download.parse_summary(out, code).raise_for_error()
        return self.record(self.weights_key, self.weights_digest, summary.describe())

    def _upload_model(self) -> str:
        """Copy the builtin model file by file: each lands in a .part, is checked with
        sha256sum on the host and only then renamed into the model directory."""
        local_dir = self.local_model_dir
        dest = self.remote_model_dir
        names = [n for n, _, _ in self.local_files]
        remote = self._remote_sizes(dest, names)
        sent = skipped = 0
        for name, size, _ in self.local_files:
            digest = _sha256(local_dir / name)
            target = f"{dest}/{name}"
            if remote.get(name) == size:
                have = self.remote.run(f"sha256sum -- {shlex.quote(target)}")[1].split()[:1]
                if have == [digest]:
                    skipped += 1
                    continue
            part = f"{dest}/.rentstack-partial/{name}.part"
            self.remote.put_file(str(local_dir / name), part)
            have = self.remote.run(f"sha256sum -- {shlex.quote(part)}")[1].split()[:1]
            if have != [digest]:
                self.remote.run(f"rm -f -- {shlex.quote(part)}")
                raise RentstackError(f"{name} arrived with a different sha256 on the host; re-run to send it again")
            self.remote.check(f"mkdir -p -- {shlex.quote(target.rsplit('/', 1)[0])} && mv -f -- {shlex.quote(part)} {shlex.quote(target)}",
                              f"moving {name} into place")
            sent += size
        self.remote.run(f"rmdir {shlex.quote(dest + '/.rentstack-partial')} 2>/dev/null; true")
        return (f"uploaded {self.model.name}: {sent / GIB:.2f} GiB sent, sha256 checked on the host; "
                f"{skipped} of {len(names)} files already there")

    def step_gpu_gate(self) -> Step:
        def check() -> str | None:
            if self.tier.accelerator == "cpu":
                return "cpu tier — no GPU needed"
            if self.facts.gpus:
                g = self.facts.gpus
                return f"{len(g)} x {g[0].name} ({g[0].memory_total_mib} MiB) present"
            return None

        def act() -> str:
            raise StopRun(NO_GPU_STOP)

        return Step("gpu", "check that the GPUs are there before serving", act, check)

    # ----------------------------------------------------------------- runtime

    @cached_property
    def wheels(self) -> str | None:
        if self.opts.wheels:
            return self.opts.wheels
        code, _ = self.remote.run(f"ls {shlex.quote(runners.AUTODL_WHEELS)}/*.whl >/dev/null 2>&1")
        return runners.AUTODL_WHEELS if code == 0 else None

    def step_runtime(self) -> Step:
        if self.runner == "native":
            wheel = runners.venv_wheel(self.tier)

            def check() -> str | None:
                code, out = self.remote.run(runners.venv_check(self.layout))
                if code == 0 and out.strip() == wheel:
                    if "runtime" not in self.state.steps:
                        self.record("runtime", checksum(wheel), f"venv {self.layout.venv}")
                    return f"vLLM venv present ({wheel} at {self.layout.venv}) — skipped"
                return None

            def act() -> str:
                # Caches come from env.sh: sshd drops most variables a client sends (AcceptEnv).
                script = f". {shlex.quote(self.layout.env_sh)} 2>/dev/null || true\n"
                self.remote.check(script + runners.venv_install(self.layout, self.tier, self.wheels),
                                  f"installing {wheel} into {self.layout.venv}", timeout=3600)
                src = f"from {self.wheels}" if self.wheels else "from the package index"
                return self.record("runtime", checksum(wheel), f"installed {wheel} into {self.layout.venv} {src}")

            return Step("runtime: venv", f"install {wheel} into a venv on the data disk", act, check)

        image = image_for(self.tier)

        def check_image() -> str | None:
            code, _ = self.remote.run(f"docker image inspect {shlex.quote(image)} >/dev/null 2>&1")
            if code == 0:
                return f"image {image} present — skipped"
            if self.tier.accelerator == "cpu":
                raise RentstackError(f"image {image} is not on the host and cannot be pulled (it is built from "
                                     "package mirrors): run `make image` there, or use --runner native")
            return None

        def act_image() -> str:
            self.remote.check(f"docker pull -q {shlex.quote(image)}", f"docker pull {image}", timeout=3600)
            return self.record("runtime", checksum(image), f"pulled {image}")

        return Step("runtime: image", f"make sure {image} is on the host", act_image, check_image)

    # ----------------------------------------------------------------- render + server

    def deployment(self) -> Deployment:
        tier = host_tier(self.tier, self.facts)
        return build_deployment(tier, self.opts.model, self.sets, runner=self.runner, bind=self.opts.bind,
                                port=self.opts.port, models_dir=self.layout.models, force=self.opts.force)

    def api_key(self) -> str:
        """The tier's key: kept on the host (0600) across renders, so clients keep working."""
        text = self.remote.read(f"{self.layout.tier_dir(self.tier.name)}/{SECRETS_FILE}") or ""
        return parse_api_key(text) or new_api_key()

    def rendered(self) -> dict[str, tuple[str, int]]:
        """Remote path -> (text, mode) for everything the server needs."""
        dep = self.deployment()
        tdir = self.layout.tier_dir(self.tier.name)
        texts = tier_files(dep, api_key=self.api_key(), state_dir=self.layout.deploy,
                           cache_dir=f"{self.layout.cache}/vllm", cache_env=cache_env(self.layout))
        files = {f"{tdir}/{name}": value for name, value in texts.items()}
        if self.runner == "compose":
            files[f"{self.layout.deploy}/compose.yaml"] = (runners.COMPOSE_FILE.read_text(), 0o644)
        else:
            files[self.layout.supervisor] = (runners.SUPERVISOR_SCRIPT.read_text(), 0o755)
        return files

    def step_render(self) -> Step:
        files: dict[str, tuple[str, int]] = {}

        def changed() -> list[str]:
            files.update(self.rendered())
            paths = sorted(files)
            _, out = self.remote.run("sha256sum -- " + " ".join(shlex.quote(p) for p in paths) + " 2>/dev/null; true")
            have = {line.split()[1]: line.split()[0] for line in out.splitlines() if len(line.split()) == 2}
            return [p for p in paths if have.get(p) != hashlib.sha256(files[p][0].encode()).hexdigest()]

        def check() -> str | None:
            todo = changed()
            self._render_todo = todo
            if not todo:
                self.state.steps.setdefault(self.key("render"), {"checksum": self.render_digest(files), "detail": ""})
                return f"rendered files unchanged ({len(files)} files in {self.layout.tier_dir(self.tier.name)}) — skipped"
            return None

        def act() -> str:
            for path in self._render_todo:
                text, mode = files[path]
                self.remote.write(path, text, mode)
            self.save_local_key(files)
            names = ", ".join(p.rsplit("/", 1)[1] for p in self._render_todo)
            return self.record(self.key("render"), self.render_digest(files), f"uploaded {names}")

        return Step("render", f"render tier {self.tier.name} with this host's numbers and upload it", act, check)

    def render_digest(self, files: dict[str, tuple[str, int]]) -> str:
        return checksum({p: hashlib.sha256(t.encode()).hexdigest() for p, (t, _) in files.items()})

    def save_local_key(self, files: dict[str, tuple[str, int]]) -> None:
        """A 0600 copy of the key on this machine, for curl through the tunnel."""
        tdir = self.opts.local_state / self.remote.spec.slug / self.tier.name
        tdir.mkdir(parents=True, exist_ok=True)
        path = tdir / "secrets.env"
        text = files[f"{self.layout.tier_dir(self.tier.name)}/secrets.env"][0]
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        os.chmod(path, 0o600)

    @property
    def health_timeout(self) -> int:
        return self.opts.health_timeout or self.tier.health.start_period_s + 120

    def server_running(self) -> bool:
        if self.runner == "compose":
            _, out = self.remote.run(runners.compose_state(self.layout, self.tier, self.opts.project))
            return out.strip().startswith("running")
        return self.remote.run(runners.native_running(self.layout, self.tier.name))[0] == 0

    def healthy(self) -> bool:
        return self.remote.run(runners.health_probe(self.opts.port))[0] == 0

    def log_tail(self, lines: int = 40) -> str:
        if self.runner == "compose":
            _, out = self.remote.run(runners.compose_logs(self.layout, self.tier, self.opts.project, lines))
        else:
            _, out = self.remote.run(f"tail -n {lines} {shlex.quote(self.layout.log(self.tier.name))} 2>/dev/null")
        return out

    def check_shm(self) -> None:
        """vLLM's shared-memory broadcast needs room in /dev/shm; Docker gives containers 64 MiB."""
        _, out = self.remote.run("df -B1 --output=size /dev/shm 2>/dev/null | tail -n 1")
        size = int(out.strip()) if out.strip().isdigit() else 0
        if 0 < size < SHM_MIN_BYTES:
            raise RentstackError(f"/dev/shm on the host is {size / 2**20:.0f} MiB; vLLM needs at least "
                                 f"{SHM_MIN_BYTES / 2**20:.0f} MiB for its shared-memory broadcast: give the "
                                 "container a larger shared memory (docker --shm-size 2g)")

    def step_server(self) -> Step:
        def check() -> str | None:
            render = self.state.steps.get(self.key("render"), {}).get("checksum")
            if render and self.state.done(self.key("server"), render) and self.server_running() and self.healthy():
                return f"server running and healthy with this configuration on 127.0.0.1:{self.opts.port} — skipped"
            return None

        def act() -> str:
            render = self.state.steps.get(self.key("render"), {}).get("checksum", "")
            self.state.forget(self.key("server"))
            if self.runner == "compose":
                code, out = self.remote.run(runners.compose_up(self.layout, self.tier, self.opts.project,
                                                               self.health_timeout), timeout=self.health_timeout + 300)
                ok = code == 0
                why = out.strip().splitlines()[-1:] if not ok else []
            else:
                self.check_shm()
                programs = runners.native_programs(self.layout, self.tier.name)
                self.remote.run(runners.native_stop(self.layout, self.tier.name, tuple(p.slug for p in programs)))
                for program in programs:
                    self.remote.check(runners.native_start(self.layout, self.tier.name, program),
                                      f"starting the supervisor of {program.name}")
                code, _ = self.remote.run(runners.native_wait(self.layout, self.tier.name, self.opts.port,
                                                              self.health_timeout), timeout=self.health_timeout + 60)
                ok = code == 0
                why = [{1: f"no answer on /health within {self.health_timeout} s", 4: "the supervisor died",
                        5: "vLLM crashed 3 times"}.get(code, f"exit {code}")]
            if not ok:
                tail = self.log_tail(15).rstrip()
                self.last_log = self.log_tail(400)
                raise RentstackError(f"the server did not become healthy ({' '.join(why)}); last log lines:\n{tail}")
            return self.record(self.key("server"), render, f"{self.runner} server healthy on 127.0.0.1:{self.opts.port}")

        how = "docker compose up -d --wait" if self.runner == "compose" else "start the supervisor (setsid nohup)"
        return Step("server", f"{how}; wait for /health up to {self.health_timeout} s", act, check)

    # ----------------------------------------------------------------- plans

    def provision_steps(self) -> list[Step]:
        # A GPU tier on a host booted without GPU stops after the download: the runtime's
        # room is checked by the `fab up` that follows, on the host with its GPU.
        serves_now = self.tier.accelerator == "cpu" or bool(self.facts.gpus)
        # Docker (and the NVIDIA toolkit) only after the GPU gate: a no-GPU boot just downloads.
        return [self.step_grow(), self.step_space(runtime=serves_now), self.step_caches(), self.step_weights(),
                self.step_gpu_gate(), self.step_docker(), self.step_runtime(), self.step_render(), self.step_server()]

    def download_steps(self) -> list[Step]:
        return [self.step_grow(), self.step_space(runtime=False), self.step_caches(), self.step_weights()]

    def up_steps(self) -> list[Step]:
        if self.tier.accelerator == "gpu" and not self.facts.gpus:
            raise RentstackError(f"tier {self.tier.name} needs a GPU but {self.remote.spec.label} has none "
                                 "(nvidia-smi sees no GPU): boot the instance with its GPU, then run `fab up` again")
        return [self.step_space(), self.step_docker(), self.step_weights(), self.step_runtime(), self.step_render(),
                self.step_server()]

    # ----------------------------------------------------------------- verify

    def verify(self, report: RunReport, check: bool = True) -> None:
        """After a good start: save a GPU calibration, send the smoke request through an SSH
        tunnel, then say where to reach the server."""
        port = self.opts.port
        if self.tier.accelerator == "gpu":
            tier = host_tier(self.tier, self.facts)
            saved = calibrate(self.log_tail(2000), tier.gpu.name, tier.gpu.memory_gib, self.model.name,
                              echo=report.outputs.append)
            if saved is None:
                report.outputs.append("calibration: this start's log gave no figures to save")
        if check:
            with self.remote.tunnel(free_local_port(), port) as url:
                result = smoke(url, self.api_key(), self.model.name)
            report.outputs.append(smoke_line(result, ", through an SSH tunnel"))
        local_key = self.opts.local_state / self.remote.spec.slug / self.tier.name / SECRETS_FILE
        report.outputs += ready_lines(f"http://127.0.0.1:{port}", self.model.name, str(local_key),
                                      " through the tunnel below")
        report.outputs.append(f"on the host: http://127.0.0.1:{port}/v1, key in "
                              f"{self.layout.tier_dir(self.tier.name)}/{SECRETS_FILE}")
        report.outputs.append(f"tunnel: {tunnel_line(self.remote.spec, port, port)}  "
                              f"then http://127.0.0.1:{port}/v1 here")
        url = self.facts.autodl_service_url
        if url:
            if port == 6006 and self.opts.bind == "0.0.0.0":
                report.outputs.append(f"AutoDL custom service: {url}/v1")
            else:
                report.outputs.append(f"AutoDL custom service: {url} serves port 6006; "
                                      "use --port 6006 --bind 0.0.0.0 to publish there (the key stays required)")
