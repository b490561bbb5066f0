#!/usr/bin/env bash
# The browser the UI tests drive: Debian's chromium and chromium-driver (no downloads by Selenium).
# Installed when missing and this user can (root with apt). ~80 s on a fresh machine.
set -euo pipefail
if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "prepare-browser: chromium/chromium-driver missing and cannot be installed here (need root + apt)" >&2; exit 1
fi
apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium chromium-driver >/dev/null
