# Shell functions shared by build/rootfs.sh, build/glibc-root.sh and build/freeze-in-root.sh:
# the names of each foreign architecture, emulation through binfmt_misc, and entering a
# root with the host's package-index configuration. Sourced, not run; POSIX sh.
#
# Every mount made here is listed in ROOT_MOUNTS and undone by root_leave (callers set a
# trap), and nothing is ever deleted below a directory that still has a mount point in it.
# shellcheck shell=sh

# The Debian release every foreign root is made from. Its glibc (2.36) is the floor of the
# binaries built in it; the host's apt sources give the mirror, never this file.
ROOT_SUITE=${ROOT_SUITE:-bookworm}

arm_die() {
	echo "${0##*/}: $*" >&2
	exit 2
}

# arch_names ARCH: set DEB_ARCH (Debian's name) and QEMU_ARCH (qemu's).
# shellcheck disable=SC2034 # read by the scripts that source this file
arch_names() {
	case "$1" in
	aarch64)
		DEB_ARCH=arm64
		QEMU_ARCH=aarch64
		;;
	armhf)
		DEB_ARCH=armhf
		QEMU_ARCH=arm
		;;
	*) arm_die "ARCH=$1: expected aarch64 or armhf (the host architecture needs no root)" ;;
	esac
}

need_root_user() {
	[ "$(id -u)" = 0 ] || arm_die "must run as root (debootstrap, chroot and mount need it)"
}

# Install the Debian packages that provide the named commands, if any is missing.
ensure_host_tools() {
	missing=""
	command -v debootstrap >/dev/null 2>&1 || [ -x /usr/sbin/debootstrap ] || missing="$missing debootstrap"
	[ -x /usr/bin/qemu-aarch64-static ] && [ -x /usr/bin/qemu-arm-static ] || missing="$missing qemu-user-static"
	command -v update-binfmts >/dev/null 2>&1 || [ -x /usr/sbin/update-binfmts ] || missing="$missing binfmt-support"
	# REPO is set by the script that sources this file.
	# shellcheck disable=SC2086,SC2153 # a list of package names
	[ -z "$missing" ] || "$REPO/build/apt-install.sh" $missing
}

# Make sure the kernel runs QEMU_ARCH binaries through qemu-user-static, with the F flag
# (the interpreter is opened at registration, so it works inside any root without a copy).
# Fails loudly: an ARM test pass that cannot emulate must not pass.
ensure_binfmt() {
	binfmt=/proc/sys/fs/binfmt_misc
	if [ ! -e "$binfmt/register" ]; then
		mount -t binfmt_misc binfmt_misc "$binfmt" ||
			arm_die "cannot mount binfmt_misc on $binfmt"
	fi
	# qemu-user-static's own install imports its formats only when binfmt-support was
	# already there: import (a no-op when done) and enable.
	PATH="$PATH:/usr/sbin:/sbin" update-binfmts --import "qemu-$QEMU_ARCH" >/dev/null 2>&1 || true
	PATH="$PATH:/usr/sbin:/sbin" update-binfmts --enable "qemu-$QEMU_ARCH" >/dev/null 2>&1 || true
	entry="$binfmt/qemu-$QEMU_ARCH"
	[ -r "$entry" ] || arm_die "no binfmt_misc entry $entry (is qemu-user-static installed?)"
	head -n 1 "$entry" | grep -qx enabled || arm_die "$entry is disabled"
	grep -q '^flags: .*F' "$entry" ||
		arm_die "$entry lacks the F flag: foreign binaries would not run inside a root"
}

# mirror_for SUITE: the first URI of the host's apt sources that serves SUITE, read at run
# time (deb822 *.sources files, then one-line sources.list files).
mirror_for() {
	suite=$1
	for f in /etc/apt/sources.list.d/*.sources; do
		[ -r "$f" ] || continue
		# One stanza per blank-line-separated paragraph: print its first URI when its
		# Suites field names the suite and its Types field names deb.
		uri=$(awk -v suite="$suite" '
			function flush() {
				if (uris != "" && types ~ /(^| )deb( |$)/ && (" " suites " ") ~ (" " suite " ")) {
					split(uris, u, " "); print u[1]; found = 1; exit
				}
				uris = ""; suites = ""; types = ""
			}
			/^[ \t]*$/ { flush(); next }
			/^URIs:/ { sub(/^URIs:[ \t]*/, ""); uris = $0 }
			/^Suites:/ { sub(/^Suites:[ \t]*/, ""); suites = $0 }
			/^Types:/ { sub(/^Types:[ \t]*/, ""); types = $0 }
			END { if (!found) flush() }
		' "$f")
		if [ -n "$uri" ]; then
			echo "$uri"
			return 0
		fi
	done
	for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
		[ -r "$f" ] || continue
		uri=$(awk -v suite="$suite" '
			$1 == "deb" {
				i = 2; if ($i ~ /^\[/) { while ($i !~ /\]$/) i++; i++ }
				if ($(i + 1) == suite) { print $i; exit }
			}' "$f")
		if [ -n "$uri" ]; then
			echo "$uri"
			return 0
		fi
	done
	return 1
}

# --- the host's package-index configuration, for pip inside a root --------------------

# The pip configuration files that exist on the host, and every file or directory they or
# the PIP_* variables name (a CA file, a constraints file, find-links, file:// indexes).
host_pip_files() {
	for f in /etc/pip.conf /etc/xdg/pip/pip.conf "${HOME:-/root}/.config/pip/pip.conf" \
		"${HOME:-/root}/.pip/pip.conf" "${PIP_CONFIG_FILE:-}"; do
		[ -n "$f" ] && [ -f "$f" ] && echo "$f"
	done
}

# Absolute paths named in the pip configuration (values, PIP_* variables), one a line.
host_pip_paths() {
	{
		host_pip_files | while read -r f; do
			sed -n 's/^[^#;[]*=[[:space:]]*//p' "$f"
		done
		env | sed -n 's/^PIP_[A-Z_]*=//p'
	} | tr '[:blank:]' '\n' | sed -n 's|^file://||; s|/*$||; \|^/|p' | sort -u
}

ROOT_MOUNTS=""

root_mount() { # root_mount ROOT_PATH MOUNT_ARGS... (records the mount point for root_leave)
	target=$1
	shift
	mount "$@" "$target" || return 1
	ROOT_MOUNTS="$target
$ROOT_MOUNTS"
}

# root_enter ROOT [REPO]: give ROOT the host's view of the network and package indexes:
# resolv.conf, hosts, the pip configuration files and the files they name (copied), the
# directories they name (bound read-only at their own path, as file:// indexes and
# find-links are, so the copied configuration holds inside); /proc, /dev, and REPO bound at
# its own path. Run before every use of the root.
root_enter() {
	root=$1
	repo=${2:-}
	for f in /etc/resolv.conf /etc/hosts; do
		# resolv.conf may be a symlink on the host: copy what it points at.
		rm -f "$root$f"
		cp -L "$f" "$root$f"
	done
	for f in $(host_pip_files); do
		mkdir -p "$root$(dirname "$f")"
		cp -L "$f" "$root$f"
	done
	for p in $(host_pip_paths); do
		# A PEP 503 index in DIR/simple may link to files beside it (../../files/...):
		# the whole DIR is bound.
		case "$p" in */simple) [ ! -d "$p" ] || p=$(dirname "$p") ;; esac
		if [ -d "$p" ]; then
			mkdir -p "$root$p"
			root_mount "$root$p" --bind "$p"
			mount -o remount,bind,ro "$root$p"
		elif [ -f "$p" ]; then
			mkdir -p "$root$(dirname "$p")"
			rm -f "$root$p"
			cp -L "$p" "$root$p"
		fi
	done
	root_mount "$root/proc" -t proc proc
	root_mount "$root/dev" --bind /dev
	if [ -n "$repo" ]; then
		mkdir -p "$root$repo"
		root_mount "$root$repo" --bind "$repo"
	fi
}

# Undo every mount root_enter made, newest first; safe to call twice (traps).
root_leave() {
	saved_ifs=$IFS
	IFS='
'
	for m in $ROOT_MOUNTS; do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "${0##*/}: could not unmount $m" >&2
	done
	IFS=$saved_ifs
	ROOT_MOUNTS=""
}

# mounts_under DIR: the mount points at or below DIR (none printed = none).
mounts_under() {
	awk -v d="$1" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts
}

# unmount_under DIR: undo every mount at or below DIR, deepest first (debootstrap mounts proc
# and sys in the root it makes itself); a busy one is detached lazily. Safe to call twice.
unmount_under() {
	for m in $(mounts_under "$1" | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" || true
	done
}

# Delete DIR, but never through a mount point (a bound repository or index).
safe_remove() {
	[ -e "$1" ] || return 0
	left=$(mounts_under "$1")
	[ -z "$left" ] || arm_die "refusing to delete $1: still mounted below it: $left"
	rm -rf --one-file-system "$1"
}

# Run a command in ROOT with a clean environment: PATH, HOME, the locale, and the host's
# PIP_* and proxy settings (the package index as configured on the host).
root_run() {
	root=$1
	shift
	for v in $(env | sed -n 's/^\(PIP_[A-Z_]*\|[a-z_]*_proxy\|[A-Z_]*_PROXY\)=.*/\1/p'); do
		eval "val=\${$v}"
		# shellcheck disable=SC2154 # val is set by the eval above
		set -- "$v=$val" "$@"
	done
	chroot "$root" /usr/bin/env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
		HOME=/root LANG=C.UTF-8 TERM=dumb "$@"
}
