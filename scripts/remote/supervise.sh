#!/bin/sh
# Keep one vLLM server running for one tier on a host without Docker (rentstack's native
# runner); restart it when it dies. Started detached (setsid nohup) by rentstack, so an SSH
# drop does not stop it. Stop it by killing its process group: kill -TERM -$(cat PIDFILE).
# usage: supervise.sh TIER_DIR LOG PIDFILE PYTHON
set -u
dir=$1 log=$2 pidfile=$3 python=$4
echo $$ > "$pidfile"
child=
trap '[ -n "$child" ] && kill "$child" 2>/dev/null; rm -f "$pidfile"; exit 0' TERM INT HUP
delay=2
while :; do
  started=$(date +%s)
  echo "supervise: starting vLLM at $(date -u +%Y-%m-%dT%H:%M:%SZ)" >> "$log"
  # The key reaches vLLM through the environment (secrets.env, 0600), never argv.
  ( set -a; . "$dir/runtime.env"; . "$dir/secrets.env"; set +a
    exec "$python" -m vllm.entrypoints.openai.api_server --config "$dir/vllm.yaml" ) >> "$log" 2>&1 &
  child=$!
  wait "$child"
  code=$?
  child=
  # A crash soon after start backs off (2, 4 ... 60 s); one after a long run restarts at once.
  if [ $(( $(date +%s) - started )) -gt 300 ]; then delay=2; elif [ "$delay" -lt 60 ]; then delay=$(( delay * 2 )); fi
  echo "supervise: vLLM exited with $code; restarting in ${delay} s" >> "$log"
  sleep "$delay"
done
