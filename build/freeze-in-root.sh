#!/bin/sh
# Freeze caramel-embedded for a foreign architecture: build/freeze.sh, run inside that
# architecture's Debian root (build/rootfs.sh) under qemu-user emulation.
#
#   build/freeze-in-root.sh --arch aarch64|armhf --form onefile|onedir [--store yes|no]
#                           [--ca-cert PATH] [--dist DIR]
#
# The arguments are build/freeze.sh's, and so is the output (DIR/caramel-embedded,
# DIR/caramel-embedded-compressed or DIR/caramel-embedded-dir/, default dist/ARCH, with the
# .buildinfo beside it). With the
# host's own ARCH this is build/freeze.sh itself, so a caller may use this script for every
# architecture.
#
# The repository is bound into the root at its own path, so build/freeze.sh finds its
# locks, and keeps its build venv (.cache/build-venv-ARCH, made with the root's python3
# from build/*.lock) and its caches in the repository's .cache, as on the host.
# SOURCE_DATE_EPOCH is taken here from the commit (the root has no git). A CA file or a
# dist directory outside the repository is bound in as well. Every mount is undone on exit,
# and only one freeze at a time uses a given root (they share its venv).
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=build/arm-lib.sh
. "$REPO/build/arm-lib.sh"

# The same arguments, with the paths made absolute: inside the root the working directory
# is the repository, and a path outside it is bound in at its own place.
absolute() {
	case "$1" in
	"") echo "" ;;
	*/*) echo "$(cd "$(dirname "$1")" && pwd)/$(basename "$1")" ;;
	*) echo "$(pwd)/$1" ;;
	esac
}
ARCH=""
CA_CERT=""
DIST=""
left=$#
while [ "$left" -gt 0 ]; do
	argument=$1
	shift
	left=$((left - 1))
	case "$argument" in
	--arch | --ca-cert | --dist)
		[ "$left" -gt 0 ] || arm_die "$argument needs a value"
		value=$1
		shift
		left=$((left - 1))
		case "$argument" in
		--arch) ARCH=$value ;;
		--ca-cert) value=$(absolute "$value") && CA_CERT=$value ;;
		--dist) mkdir -p "$value" && value=$(cd "$value" && pwd) && DIST=$value ;;
		esac
		set -- "$@" "$argument" "$value"
		;;
	*) set -- "$@" "$argument" ;;
	esac
done

HOST_ARCH=$("$REPO/build/freeze.sh" --host-arch)
if [ -z "$ARCH" ] || [ "$ARCH" = "$HOST_ARCH" ]; then
	exec "$REPO/build/freeze.sh" "$@"
fi
arch_names "$ARCH"
need_root_user

if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null) ||
		arm_die "not a git checkout: set SOURCE_DATE_EPOCH to the sources' time"
fi

ROOT=$("$REPO/build/rootfs.sh" "$ARCH")

exec 8>"$REPO/.cache/roots/$ARCH/use.lock"
flock 8

# Paths outside the repository are not in the root: bind them at their own path, on a
# placeholder made for the purpose and removed again on exit.
PLACEHOLDERS=""
# placeholder PATH dir|file: make PATH in the root, remembering the topmost directory that
# did not exist before, so that leave removes all it made and nothing else.
placeholder() {
	top=$1
	while [ ! -e "$(dirname "$top")" ]; do top=$(dirname "$top"); done
	[ -e "$top" ] || PLACEHOLDERS="$PLACEHOLDERS
$top"
	if [ "$2" = dir ]; then
		mkdir -p "$1"
	else
		mkdir -p "$(dirname "$1")"
		[ -e "$1" ] || : >"$1"
	fi
}
leave() {
	root_leave
	IFS='
'
	for made in $PLACEHOLDERS; do
		[ -n "$(mounts_under "$made")" ] || safe_remove "$made"
	done
}
trap leave EXIT
trap 'exit 130' INT TERM HUP
root_enter "$ROOT" "$REPO"

outside() {
	case "$1" in "$REPO" | "$REPO"/*) return 1 ;; esac
	return 0
}
if [ -n "$CA_CERT" ]; then
	[ -f "$CA_CERT" ] || arm_die "--ca-cert $CA_CERT: no such file"
	if outside "$CA_CERT"; then
		placeholder "$ROOT$CA_CERT" file
		root_mount "$ROOT$CA_CERT" --bind "$CA_CERT"
	fi
fi
if [ -n "$DIST" ] && outside "$DIST"; then
	placeholder "$ROOT$DIST" dir
	root_mount "$ROOT$DIST" --bind "$DIST"
fi

started=$(date +%s)
# shellcheck disable=SC2016 # expanded by the shell inside the root
root_run "$ROOT" SOURCE_DATE_EPOCH="$SOURCE_DATE_EPOCH" \
	sh -c 'cd "$1" && shift && exec sh build/freeze.sh "$@"' freeze-in-root "$REPO" "$@"
echo "freeze-in-root.sh: $ARCH frozen in $(($(date +%s) - started)) s under emulation" >&2
