#!/bin/sh
# Make, or reuse, the minimal Debian root that foreign-architecture builds run in.
#
#   build/rootfs.sh ARCH        ARCH = aarch64 | armhf; prints the root's path on stdout
#
# The root is .cache/roots/ARCH/rootfs: Debian $ROOT_SUITE (bookworm) for that architecture,
# made by debootstrap from the mirror the host's apt sources name (read here at run time:
# no host name is written in the repository), run under qemu-user-static through
# binfmt_misc. It holds what build/freeze.sh needs to build PyInstaller's launcher, cffi
# (armhf has no wheel) and freeze: Debian's python3 with its shared libpython, gcc, the
# zlib and libffi headers, binutils (PyInstaller strips with it).
#
# Cached: .cache/roots/ARCH/stamp holds the digest of the recipe (architecture, suite,
# package list); a root whose stamp matches is reused as it is. The build tools pinned by
# build/*.lock are not in the root: build/freeze.sh installs them into a venv of its own,
# keyed by the locks' digest, so a changed lock rebuilds the venv and not the root.
# A root is built beside its final place and renamed into it only when complete, under a
# lock, so an interrupted or concurrent run never leaves a half root behind a valid stamp.
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=build/arm-lib.sh
. "$REPO/build/arm-lib.sh"

[ $# -eq 1 ] || arm_die "usage: build/rootfs.sh aarch64|armhf"
ARCH=$1
arch_names "$ARCH"

# What the freeze needs in the root. Recommends are not installed: this list is complete.
PACKAGES="python3 python3-venv python3-dev libpython3.11 gcc libc6-dev libffi-dev zlib1g-dev
binutils pkg-config ca-certificates"
RECIPE_VERSION=1 # bump to rebuild every root when the way it is made changes

CACHE="$REPO/.cache/roots/$ARCH"
ROOT="$CACHE/rootfs"
STAMP="$CACHE/stamp"
NEW="$CACHE/rootfs.new"

recipe_digest() {
	# shellcheck disable=SC2086 # one line per package name
	printf '%s\n' "$RECIPE_VERSION" "$DEB_ARCH" "$ROOT_SUITE" $PACKAGES | sha256sum | cut -d' ' -f1
}

need_root_user
mkdir -p "$CACHE"
exec 9>"$CACHE/lock"
flock 9

# Emulation is needed to use the root as much as to make it: checked every time.
ensure_host_tools
ensure_binfmt

if [ -x "$ROOT/usr/bin/python3" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$(recipe_digest)" ]; then
	[ ! -s "$CACHE/warnings" ] || cat "$CACHE/warnings" >&2
	echo "$ROOT"
	exit 0
fi

cleanup() {
	root_leave
	unmount_under "$NEW"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

MIRROR=$(mirror_for "$ROOT_SUITE") ||
	arm_die "no apt source for $ROOT_SUITE on this host (/etc/apt/sources.list*): cannot choose a mirror"
started=$(date +%s)
echo "rootfs.sh: making the $ARCH ($DEB_ARCH) root for $ROOT_SUITE in $ROOT (a few minutes)" >&2

# A root whose debootstrap stage finished is kept for the next try when a later stage
# failed (a mirror in the middle of a sync): debootstrap is the long part.
BASE_MARK="$NEW/.debootstrap-done"
if [ "$(cat "$BASE_MARK" 2>/dev/null)" != "$DEB_ARCH $ROOT_SUITE" ]; then
	safe_remove "$NEW"
	mkdir -p "$NEW"
	# minbase: apt, dpkg and the essential packages; the rest comes with apt below, which
	# resolves dependencies properly and takes the updates and security suites too.
	debootstrap --variant=minbase --arch="$DEB_ARCH" "$ROOT_SUITE" "$NEW" "$MIRROR" \
		>"$CACHE/debootstrap.log" 2>&1 || {
		tail -n 20 "$CACHE/debootstrap.log" >&2
		[ ! -r "$NEW/debootstrap/debootstrap.log" ] || tail -n 20 "$NEW/debootstrap/debootstrap.log" >&2
		arm_die "debootstrap failed (log: $CACHE/debootstrap.log)"
	}
	echo "$DEB_ARCH $ROOT_SUITE" >"$BASE_MARK"
	echo "rootfs.sh: $ARCH debootstrap done in $(($(date +%s) - started)) s" >&2
fi

{
	echo "deb $MIRROR $ROOT_SUITE main"
	if updates=$(mirror_for "$ROOT_SUITE-updates"); then
		echo "deb $updates $ROOT_SUITE-updates main"
	fi
	if security=$(mirror_for "$ROOT_SUITE-security"); then
		echo "deb $security $ROOT_SUITE-security main"
	fi
} >"$NEW/etc/apt/sources.list"
# Nothing in a build root starts services.
printf '#!/bin/sh\nexit 101\n' >"$NEW/usr/sbin/policy-rc.d"
chmod 755 "$NEW/usr/sbin/policy-rc.d"

root_enter "$NEW"
# A mirror may be caught in a sync (an index whose size does not match its Release file):
# try again. If the updates or security index still fails, the root is made from what
# could be read, and the warning is kept beside it and repeated at every use; a missing
# main index makes the install below fail.
rm -f "$CACHE/warnings"
tries=0
until root_run "$NEW" apt-get -o Acquire::Retries=3 update -qq 2>"$CACHE/apt-update.log"; do
	tries=$((tries + 1))
	if [ "$tries" -ge 3 ]; then
		{
			echo "WARNING: apt-get update in the $ARCH root failed $tries times; this root lacks:"
			grep '^E: Failed to fetch' "$CACHE/apt-update.log"
		} | tee "$CACHE/warnings" >&2
		break
	fi
	sleep 10
done
# shellcheck disable=SC2086 # a list of package names
root_run "$NEW" DEBIAN_FRONTEND=noninteractive apt-get -o Acquire::Retries=3 install -y -qq --no-install-recommends \
	$PACKAGES >"$CACHE/apt.log" 2>&1 || {
	tail -n 20 "$CACHE/apt.log" >&2
	arm_die "apt-get install in the $ARCH root failed (log: $CACHE/apt.log)"
}
root_run "$NEW" apt-get clean
root_run "$NEW" python3 -c 'import sysconfig, sys; sys.exit(sysconfig.get_config_var("Py_ENABLE_SHARED") != 1)' ||
	arm_die "the $ARCH root's python3 has no shared libpython"
root_leave

rm -f "$BASE_MARK"
safe_remove "$ROOT"
mv "$NEW" "$ROOT"
recipe_digest >"$STAMP"
echo "$(($(date +%s) - started))" >"$CACHE/build-seconds"
echo "rootfs.sh: $ARCH root ready in $(cat "$CACHE/build-seconds") s" >&2
echo "$ROOT"
