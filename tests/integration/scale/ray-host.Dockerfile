# A host for the multi-host (Ray) tests: the SSH test host plus iproute2 (the route fact) and
# iptables (Ray's ports kept on the private network). pip installs only from the wheel folder
# the fixture mounts at /wheels, like a rented host whose pip points at a mirror.
ARG BASE=rentstack/test-ssh-host:bookworm
FROM ${BASE}
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends iproute2 iptables netcat-openbsd \
 && rm -rf /var/lib/apt/lists/* \
 && printf '[global]\nfind-links = /wheels\nno-index = true\n' > /etc/pip.conf
