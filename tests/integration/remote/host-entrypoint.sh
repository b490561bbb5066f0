#!/bin/sh
# Test host start-up: mount the data disk (a loop device made by the test fixture), set the
# login credentials, write AutoDL's custom-service env file, then run sshd in the foreground.
set -eu
port=${RS_SSH_PORT:-22}
data=${RS_DATA_DIR:-/root/autodl-tmp}
mkdir -p "$data"
if [ -n "${RS_DATA_DEV:-}" ]; then
  mount "$RS_DATA_DEV" "$data"
fi
if [ -n "${RS_ROOT_PASSWORD:-}" ]; then
  echo "root:$RS_ROOT_PASSWORD" | chpasswd
fi
mkdir -p /root/.ssh && chmod 700 /root/.ssh
if [ -f /etc/rentstack-test/authorized_keys ]; then
  cp /etc/rentstack-test/authorized_keys /root/.ssh/authorized_keys && chmod 600 /root/.ssh/authorized_keys
fi
if [ -n "${RS_AUTODL_URL:-}" ]; then
  echo "export AutoDLService6006URL=\"$RS_AUTODL_URL\"" > /etc/profile.d/autodl.env.sh
fi
exec /usr/sbin/sshd -D -e -p "$port" -o ListenAddress="${RS_SSH_LISTEN:-127.0.0.1}" -o PermitRootLogin=yes \
  -o PasswordAuthentication=yes -o UseDNS=no -o MaxStartups=50
