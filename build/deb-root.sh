#!/bin/sh
# Make, or reuse, the bare Debian root that the .deb of one architecture is installed into
# by its tests (tests/firmware/test_deb.py, tests/arm/test_deb.py).
#
#   build/deb-root.sh ARCH      ARCH = x86_64 | aarch64 | armhf; prints the root's path
#
# x86_64: .cache/roots/x86_64/deb-root, Debian $ROOT_SUITE (bookworm) as debootstrap's
# minbase makes it and nothing more (dpkg, apt, init-system-helpers: what a bare Debian
# system has), from the mirror the host's apt sources name (build/arm-lib.sh's
# mirror_for: no host name is written in the repository). The ARM architectures reuse the
# build root of `make test-arm` (build/rootfs.sh): a bookworm minbase with the freeze's
# tools added, made once and slow to make.
#
# The tests never change a root: they install into an overlay of it (a throw-away upper
# layer), so one root serves every run. Cached like build/rootfs.sh's roots: a stamp with
# the recipe's digest, built beside its place and renamed into it when complete, under a
# lock.
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=build/arm-lib.sh
. "$REPO/build/arm-lib.sh"

[ $# -eq 1 ] || arm_die "usage: build/deb-root.sh x86_64|aarch64|armhf"
case "$1" in
aarch64 | armhf) exec "$REPO/build/rootfs.sh" "$1" ;;
x86_64) DEB_ARCH=amd64 ;;
*) arm_die "ARCH=$1: expected x86_64, aarch64 or armhf" ;;
esac
[ "$(uname -m)" = x86_64 ] || arm_die "the x86_64 root is made on an x86_64 machine"

RECIPE_VERSION=1 # bump to rebuild the root when the way it is made changes
CACHE="$REPO/.cache/roots/x86_64"
ROOT="$CACHE/deb-root"
STAMP="$CACHE/deb-root.stamp"
NEW="$CACHE/deb-root.new"

recipe_digest() {
	printf '%s\n' "$RECIPE_VERSION" "$DEB_ARCH" "$ROOT_SUITE" minbase | sha256sum | cut -d' ' -f1
}

need_root_user
mkdir -p "$CACHE"
exec 9>"$CACHE/deb-root.lock"
flock 9

if [ -x "$ROOT/usr/bin/dpkg" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$(recipe_digest)" ]; then
	echo "$ROOT"
	exit 0
fi

command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] ||
	"$REPO/build/apt-install.sh" debootstrap

cleanup() {
	unmount_under "$NEW"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

MIRROR=$(mirror_for "$ROOT_SUITE") ||
	arm_die "no apt source for $ROOT_SUITE on this host (/etc/apt/sources.list*): cannot choose a mirror"
started=$(date +%s)
echo "deb-root.sh: making the bare $DEB_ARCH $ROOT_SUITE root in $ROOT (a few minutes)" >&2
safe_remove "$NEW"
mkdir -p "$NEW"
PATH="$PATH:/usr/sbin:/sbin" debootstrap --variant=minbase --arch="$DEB_ARCH" "$ROOT_SUITE" "$NEW" "$MIRROR" \
	>"$CACHE/deb-root.log" 2>&1 || {
	tail -n 20 "$CACHE/deb-root.log" >&2
	arm_die "debootstrap failed (log: $CACHE/deb-root.log)"
}
cleanup
# Nothing in a test root starts services (deb-systemd-invoke asks policy-rc.d).
printf '#!/bin/sh\nexit 101\n' >"$NEW/usr/sbin/policy-rc.d"
chmod 755 "$NEW/usr/sbin/policy-rc.d"
rm -rf "$NEW/var/cache/apt/archives"/*.deb

safe_remove "$ROOT"
mv "$NEW" "$ROOT"
recipe_digest >"$STAMP"
echo "deb-root.sh: root ready in $(($(date +%s) - started)) s" >&2
echo "$ROOT"
