# A rented-GPU-like SSH host for the provisioning tests: Debian bookworm with sshd (password
# and key login as root), python3 + venv (what fetch_weights.py and the native runner need),
# e2fsprogs/util-linux for the data disk, libnuma1 for vLLM CPU. Built FROM the locally
# debootstrap'ed base (no registry is reachable); openssh-server comes from Debian's mirror.
ARG BASE=rentstack/debian-base:bookworm
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      openssh-server python3 python3-venv e2fsprogs util-linux procps libnuma1 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /run/sshd \
 && ssh-keygen -A
COPY host-entrypoint.sh /usr/local/bin/rentstack-test-host
ENTRYPOINT ["sh", "/usr/local/bin/rentstack-test-host"]
