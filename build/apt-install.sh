#!/bin/sh
# Install Debian packages on this machine, one installer at a time.
#
#   build/apt-install.sh PACKAGE...
#
# Why: targets that run side by side (the two ARM roots of `make test-arm`, a test pass and
# a firmware check) each install what they lack, and apt takes its lock without waiting:
# the second apt-get fails at once with "Could not get lock". So every installer of the
# project goes through here: one flock of our own, and apt told to wait for anyone else's.
set -eu
[ $# -gt 0 ] || exit 0
exec 9>/var/lock/caramel-embedded-apt.lock
flock 9
echo "installing system packages: $*" >&2
apt-get -o DPkg::Lock::Timeout=600 update -qq
DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=600 install -y -qq "$@" >/dev/null
