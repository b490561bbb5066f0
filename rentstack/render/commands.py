"""The docker compose command line for one rendered tier, as a pure argv.

Local `up` runs it with subprocess; the compose runner on a host joins it into a shell
line. Every call names the project directory, the compose file, the tier's compose.env and
its profile explicitly, so it behaves the same from any working directory.
"""

from __future__ import annotations


def compose_argv(*args: str, project_dir: str, env_file: str, profile: str, project: str | None = None,
                 compose_file: str | None = None, extra_profiles: tuple[str, ...] = ()) -> list[str]:
    """``docker compose [-p P] --project-directory D -f F --env-file E --profile X [--profile Y...] ARGS...``;
    the compose file defaults to D/compose.yaml. extra_profiles: the parts around the server
    (webui, monitoring, idle-stop); a --profile flag makes compose ignore COMPOSE_PROFILES."""
    head = ["docker", "compose", *(["-p", project] if project else [])]
    profiles = [flag for name in (profile, *extra_profiles) for flag in ("--profile", name)]
    return [*head, "--project-directory", project_dir, "-f", compose_file or f"{project_dir}/compose.yaml",
            "--env-file", env_file, *profiles, *args]


def compose_service(profile: str) -> str:
    """The vLLM service of a profile in compose.yaml."""
    return f"vllm-{profile}"
