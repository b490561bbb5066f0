"""docker compose on this machine, for one rendered tier (the argv comes from
rentstack.render.commands.compose_argv, shared with the compose runner on hosts)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path

from rentstack.local.docker import run
from rentstack.render.commands import compose_argv, compose_service
from rentstack.safe import read_env_text

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class Stack:
    """One tier's compose project: root compose.yaml + .rentstack/<tier>/compose.env."""

    profile: str
    env_file: Path
    compose_file: Path = REPO / "compose.yaml"
    project: str | None = None           # default: `name:` in compose.yaml (rentstack)

    @property
    def service(self) -> str:
        return compose_service(self.profile)

    @property
    def profiles(self) -> list[str]:
        """The tier's profile and the parts rendered with it (COMPOSE_PROFILES in compose.env):
        passed as flags, because a --profile flag makes compose ignore COMPOSE_PROFILES."""
        names = [self.profile]
        env = read_env_text(self.env_file.read_text()) if self.env_file.is_file() else {}
        names += [p for p in env.get("COMPOSE_PROFILES", "").split(",") if p and p not in names]
        return names

    def cmd(self, *args: str) -> list[str]:
        return compose_argv(*args, project_dir=str(self.compose_file.parent), compose_file=str(self.compose_file),
                            env_file=str(self.env_file), profile=self.profile, project=self.project,
                            extra_profiles=tuple(self.profiles[1:]))

    def up(self, wait_timeout: int) -> bool:
        """`up -d --wait`: True once the service is healthy, False if it failed or timed out."""
        proc = subprocess.run(self.cmd("up", "-d", "--wait", "--wait-timeout", str(wait_timeout)), text=True)
        return proc.returncode == 0

    def down(self) -> None:
        run(self.cmd("down", "--remove-orphans"))

    def logs(self, tail: int | None = None) -> str:
        args = ["logs", "--no-color", "--no-log-prefix"]
        if tail:
            args += ["--tail", str(tail)]
        proc = run(self.cmd(*args, self.service), check=False, capture=True)
        return proc.stdout + proc.stderr

    def state(self) -> str:
        """'running (healthy)', 'exited', ... or '' when the container does not exist."""
        proc = run(self.cmd("ps", "-a", "--format", "{{.State}} {{.Status}}", self.service), check=False, capture=True)
        return proc.stdout.strip()

    def config(self) -> str:
        return run(self.cmd("config", "--quiet"), capture=True).stdout
