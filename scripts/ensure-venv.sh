#!/usr/bin/env bash
# Create or refresh the project's venv: installs rentstack (editable) with its test tools,
# and again whenever pyproject.toml changes. Usage: ensure-venv.sh VENV_DIR
set -euo pipefail
venv=${1:-.venv}
stamp="$venv/.pyproject.sha256"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ -x "$venv/bin/rentstack" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then exit 0; fi
command -v python3 >/dev/null || { echo "ensure-venv: python3 is missing: apt-get install python3 python3-venv" >&2; exit 1; }
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" 2>/dev/null || { echo "ensure-venv: python3 -m venv failed: apt-get install python3-venv" >&2; exit 1; }
fi
echo "ensure-venv: installing rentstack and its test tools into $venv"
"$venv/bin/pip" install -q --disable-pip-version-check -e '.[dev]' 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
echo "$want" > "$stamp"
