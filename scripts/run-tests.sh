#!/usr/bin/env bash
# `make test`: unit tests always; integration tests need a Docker engine.
# With CI=true, Docker is installed/started first and integration tests must run (never skip).
# Without it, Docker is prepared when this user can (root with apt), else those tests skip.
# Usage: run-tests.sh PYTEST [pytest args...]
set -uo pipefail
pytest=$1; shift
if [ "${CI:-}" = "true" ]; then
  bash scripts/prepare-host.sh || { echo "run-tests: CI needs Docker and could not prepare it" >&2; exit 1; }
  bash scripts/prepare-browser.sh || { echo "run-tests: CI needs chromium for the UI test and could not install it" >&2; exit 1; }
elif ! docker info >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  bash scripts/prepare-host.sh || echo "run-tests: could not prepare Docker; integration tests will skip"
fi
# The terminal tests drive programs in tmux (a person's terminal, read back with capture-pane).
if ! command -v tmux >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux >/dev/null; } \
    || echo "run-tests: could not install tmux; the tests that need it will fail" >&2
fi
"$pytest" "$@"
status=$?
# pytest exits 5 when it collected nothing: that is a failure of the suite, not a pass.
[ "$status" = 5 ] && echo "run-tests: no tests were collected" >&2 && exit 1
exit "$status"
