#!/bin/sh
# Make a root that holds nothing but the C library of a foreign architecture.
#
#   build/glibc-root.sh ARCH      ARCH = aarch64 | armhf; prints the root's path on stdout
#
# .cache/roots/ARCH/glibc-only holds the shared objects of Debian's libc6 package, copied
# from the ARCH build root (build/rootfs.sh): the loader, libc.so.6, libm, libpthread, libdl,
# librt, libresolv, the NSS modules... (not its gconv modules nor its debugging aids:
# libmemusage, libpcprofile, libc_malloc_debug, libthread_db), at the paths and through the
# /lib -> usr/lib links the build root has, and an empty /tmp for the one-file launcher.
# Nothing else: no zlib, no libffi, no OpenSSL, no Python, no /etc. A binary that runs with
# it as its root, or with it as QEMU_LD_PREFIX, needs nothing from the target but glibc.
# Remade whenever the build root was remade (its stamp is copied beside this one).
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=build/arm-lib.sh
. "$REPO/build/arm-lib.sh"

[ $# -eq 1 ] || arm_die "usage: build/glibc-root.sh aarch64|armhf"
ARCH=$1
arch_names "$ARCH"

BUILD_ROOT=$("$REPO/build/rootfs.sh" "$ARCH")
CACHE="$REPO/.cache/roots/$ARCH"
GLIBC_ROOT="$CACHE/glibc-only"
STAMP="$CACHE/glibc-only.stamp"
NEW="$CACHE/glibc-only.new"

if [ -x "$GLIBC_ROOT/lib" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$(cat "$CACHE/stamp")" ]; then
	echo "$GLIBC_ROOT"
	exit 0
fi

LIST="$BUILD_ROOT/var/lib/dpkg/info/libc6:$DEB_ARCH.list"
[ -r "$LIST" ] || arm_die "$LIST: the build root has no libc6 package list"

safe_remove "$NEW"
mkdir -p "$NEW"
# The merged-/usr links first (/lib -> usr/lib ...), so the listed paths land where the
# build root has them.
for link in bin sbin lib lib32 lib64 libx32; do
	if [ -L "$BUILD_ROOT/$link" ]; then
		cp -P "$BUILD_ROOT/$link" "$NEW/$link"
		mkdir -p "$NEW/$(readlink "$BUILD_ROOT/$link")"
	fi
done
copied=0
while read -r path; do
	case "$path" in
	*/gconv/*) continue ;;
	# Debugging aids, not part of what a target's C library needs.
	*/libc_malloc_debug.so.* | */libthread_db.so.*) continue ;;
	*.so.[0-9]*) ;;
	*) continue ;;
	esac
	[ -f "$BUILD_ROOT$path" ] || [ -L "$BUILD_ROOT$path" ] || continue
	mkdir -p "$NEW$(dirname "$path")"
	# -P: a listed symlink (the loader's /lib/ld-linux-* link) stays a symlink.
	cp -P --preserve=mode,timestamps "$BUILD_ROOT$path" "$NEW$path"
	copied=$((copied + 1))
done <"$LIST"
[ "$copied" -gt 5 ] || arm_die "only $copied glibc files found in $LIST"
mkdir -p "$NEW/tmp"
chmod 1777 "$NEW/tmp"

safe_remove "$GLIBC_ROOT"
mv "$NEW" "$GLIBC_ROOT"
cp "$CACHE/stamp" "$STAMP"
echo "$GLIBC_ROOT"
