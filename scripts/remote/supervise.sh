#!/bin/sh
# Keep one process running on a host without Docker (rentstack's native runner) and restart
# it when it dies. One supervisor per process (vLLM, and beside it any other the tier needs),
# each with its own log and pid file. Started detached (setsid nohup) by rentstack, so an
# SSH drop does not stop it. Stop it by killing its process group: kill -TERM -$(cat PIDFILE).
#
# usage: supervise.sh NAME LOG PIDFILE [ENV_FILE ...] -- COMMAND [ARG ...]
# Each ENV_FILE is sourced with `set -a` before COMMAND runs (secrets reach the process
# through its environment, never its argv).
set -u
name=$1 log=$2 pidfile=$3
shift 3
echo $$ > "$pidfile"
child=
trap '[ -n "$child" ] && kill "$child" 2>/dev/null; rm -f "$pidfile"; exit 0' TERM INT HUP
delay=2
while :; do
  started=$(date +%s)
  echo "supervise: starting $name at $(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$log"
  # The subshell has its own copy of "$@": it consumes the env files and execs the rest.
  ( set -a
    while [ "$#" -gt 0 ] && [ "$1" != "--" ]; do . "$1"; shift; done
    shift
    set +a
    exec "$@" ) >> "$log" 2>&1 &
  child=$!
  wait "$child"
  code=$?
  child=
  # A crash soon after start backs off (2, 4 ... 60 s); one after a long run restarts at once.
  if [ $(( $(date +%s) - started )) -gt 300 ]; then delay=2; elif [ "$delay" -lt 60 ]; then delay=$(( delay * 2 )); fi
  echo "supervise: $name exited with $code; restarting in ${delay} s" >> "$log"
  sleep "$delay"
done
