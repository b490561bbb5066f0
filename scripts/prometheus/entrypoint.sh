#!/bin/sh
# Start Prometheus with the metrics token from the environment (secrets.env, 0600 on the host):
# Prometheus reads bearer credentials from a file, so the token goes to a tmpfs file that only
# this container sees; prometheus.yml names the file, never the token.
set -eu
[ -n "${RENTSTACK_METRICS_TOKEN:-}" ] || { echo "prometheus: RENTSTACK_METRICS_TOKEN is missing (secrets.env); re-render the tier" >&2; exit 2; }
mkdir -p /run/rentstack
umask 077
printf '%s' "$RENTSTACK_METRICS_TOKEN" > /run/rentstack/metrics_token
unset RENTSTACK_METRICS_TOKEN VLLM_API_KEY
exec /usr/bin/prometheus --config.file=/etc/rentstack/prometheus.yml \
  --storage.tsdb.path=/prometheus --storage.tsdb.retention.time="${RENTSTACK_PROMETHEUS_RETENTION:-15d}" \
  --web.listen-address=:9090 \
  --web.console.templates=/etc/prometheus/consoles --web.console.libraries=/etc/prometheus/console_libraries
