# Prometheus from Debian's package on the debootstrap'ed base (no registry pull).
# bookworm: prometheus 2.42 with the classic web UI. Config and token are not baked in:
# prometheus.yml is mounted, the metrics token comes from secrets.env at run time
# (scripts/prometheus/entrypoint.sh writes it to a tmpfs file for credentials_file).
ARG BASE=rentstack/debian-base:bookworm
FROM ${BASE}
# curl is the healthcheck's: the debootstrap base has it, debian:bookworm-slim (the base on a
# rented Docker host, rentstack.remote.steps.runtime) does not.
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus curl \
 && apt-get clean && rm -rf /var/lib/apt/lists/*
COPY entrypoint.sh /usr/local/bin/rentstack-prometheus
EXPOSE 9090
ENTRYPOINT ["sh", "/usr/local/bin/rentstack-prometheus"]
