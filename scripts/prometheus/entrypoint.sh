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
# The front speaks https when the tier was started with TLS (RENTSTACK_FRONT_SCHEME).
scheme=${RENTSTACK_FRONT_SCHEME:-http}
case "$scheme" in http|https) ;; *) echo "prometheus: RENTSTACK_FRONT_SCHEME $scheme: use http or https" >&2; exit 2;; esac
sed "s/@SCHEME@/$scheme/" /etc/rentstack/prometheus.yml > /run/rentstack/prometheus.yml
exec /usr/bin/prometheus --config.file=/run/rentstack/prometheus.yml \
  --storage.tsdb.path=/prometheus --storage.tsdb.retention.time="${RENTSTACK_PROMETHEUS_RETENTION:-15d}" \
  --web.listen-address=:9090 \
  --web.console.templates=/etc/prometheus/consoles --web.console.libraries=/etc/prometheus/console_libraries
