"""Docker Engine + Compose (+ the NVIDIA toolkit for GPU tiers) on hosts that run compose."""

from __future__ import annotations

import json
import shlex

from rentstack.errors import RentstackError
from rentstack.remote import runners
from rentstack.remote.steps import Step
from rentstack.remote.steps.context import Ctx, Host, View


def step(ctx: Ctx) -> Step:
    gpu = ctx.tier.accelerator == "gpu"
    f = ctx.facts

    def check(view: View) -> str | None:
        if ctx.runner != "compose":
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

    def act(host: Host) -> str:
        remote_script = f"{ctx.layout.home}/prepare-host.sh"
        host.write(remote_script, runners.PREPARE_HOST_SCRIPT.read_text(), 0o755)
        if not f.docker.cli_installed:
            # A fresh engine keeps its images on the data disk, not the small system disk.
            daemon = json.dumps({"data-root": ctx.layout.docker_root})
            host.run(f"mkdir -p /etc/docker && [ -f /etc/docker/daemon.json ] || "
                     f"echo {shlex.quote(daemon)} > /etc/docker/daemon.json")
        out = host.check(f"bash {shlex.quote(remote_script)}{' --gpu' if gpu else ''}",
                         "host preparation (scripts/prepare-host.sh)", timeout=1800)
        return out.strip().splitlines()[-1] if out.strip() else "Docker prepared"

    return Step("host: docker", "install Docker Engine + Compose (+ NVIDIA toolkit for GPU tiers)", act, check)
