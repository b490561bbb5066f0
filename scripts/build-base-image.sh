#!/usr/bin/env bash
# Build a Debian bookworm base image from Debian's package mirror only (no container
# registry): debootstrap a minimal root filesystem and `docker import` it.
# Usage: build-base-image.sh IMAGE_TAG [EXTRA_PACKAGES,comma,separated]
# The mirror is read from this machine's apt sources, never hard-coded.
set -euo pipefail
tag=${1:?usage: build-base-image.sh IMAGE_TAG [EXTRA,PACKAGES]}
extra=${2:-}
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "build-base-image: $tag exists, reusing it"; exit 0
fi
mirror=$(grep -rhoE '^URIs:[[:space:]]*\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}' | grep -v security | head -n1 || true)
[ -n "$mirror" ] || mirror=$(grep -hoE '^deb[[:space:]]+\S+' /etc/apt/sources.list 2>/dev/null | awk '{print $2}' | head -n1 || true)
[ -n "$mirror" ] || { echo "build-base-image: error: no Debian mirror found in /etc/apt/sources.list(.d); add one and rerun" >&2; exit 1; }
command -v debootstrap >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }
rootfs=$(mktemp -d /var/tmp/rentstack-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
pkgs=python3,python3-venv,ca-certificates,curl,libnuma1${extra:+,$extra}
echo "build-base-image: debootstrap bookworm from $mirror with $pkgs"
debootstrap --variant=minbase --include="$pkgs" bookworm "$rootfs" "$mirror" >/var/tmp/rentstack-debootstrap.log 2>&1 \
  || { tail -n 20 /var/tmp/rentstack-debootstrap.log >&2; echo "build-base-image: error: debootstrap failed (log above)" >&2; exit 1; }
# The image's apt should use the same mirror (security updates included) and stay small.
printf 'deb %s bookworm main\ndeb %s bookworm-updates main\n' "$mirror" "$mirror" > "$rootfs/etc/apt/sources.list"
rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
tar -C "$rootfs" -c . | docker import -c 'ENV LANG=C.UTF-8' -c 'CMD ["/bin/bash"]' - "$tag" >/dev/null
echo "build-base-image: built $tag"
