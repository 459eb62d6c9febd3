#!/bin/sh
# Build the Debian package of caramel-embedded for one architecture.
#
#   build/deb.sh --arch x86_64|aarch64|armhf [--store 1|0] [--dist DIR] [--out DIR]
#                [--python PYTHON]
#
# From the one-file binary that `make binary ARCH=... [STORE=...]` left in DIR (default
# dist/ARCH): the stored form caramel-embedded (--store 1, the default) or the compressed
# one caramel-embedded-compressed (--store 0), with its .buildinfo and its SBOM (.cdx.json)
# beside it, installed as /usr/bin/caramel-embedded either way; into OUT (default DIR):
# caramel-embedded_VERSION-REVISION_DEBARCH.deb. The tree is what
# `make install DESTDIR=... PREFIX=/usr INIT=systemd` installs (firmware-integration/
# install.mk: one list of files, for firmware images and the package alike); build/deb.py
# adds the package's metadata (control, copyright from the SBOM, changelogs, maintainer
# scripts) and gzips the man page. PYTHON must have PyInstaller (the host's build venv:
# build/elf_report.py reads the binary's archive for the Depends: field). DEB_MAINTAINER
# and DEB_REVISION (environment) override the Maintainer field and the Debian revision.
#
# dpkg-deb makes the archive: files owned by root (--root-owner-group), times from
# SOURCE_DATE_EPOCH (the binary's own, from its .buildinfo), so two builds of one binary
# give the same bytes.
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)

die() {
	echo "deb.sh: $*" >&2
	exit 2
}

ARCH=""
STORE=1
DIST=""
OUT=""
PYTHON=""
while [ $# -gt 0 ]; do
	case "$1" in
	--arch) ARCH=${2:?--arch needs a value} && shift 2 ;;
	--store) STORE=${2:?--store needs a value} && shift 2 ;;
	--dist) DIST=${2:?--dist needs a value} && shift 2 ;;
	--out) OUT=${2:?--out needs a value} && shift 2 ;;
	--python) PYTHON=${2:?--python needs a value} && shift 2 ;;
	*) die "unknown argument: $1 (see the comment at the top of build/deb.sh)" ;;
	esac
done
case "$ARCH" in
x86_64 | aarch64 | armhf) ;;
*) die "--arch x86_64|aarch64|armhf is required" ;;
esac
GIVEN=${DIST:-dist/$ARCH}
DIST=$(cd "${DIST:-$REPO/dist/$ARCH}" 2>/dev/null && pwd) || die "no directory $GIVEN: run make binary ARCH=$ARCH first"
case "$STORE" in
1 | yes) STORE=1 NAME=caramel-embedded ;;
0 | no) STORE=0 NAME=caramel-embedded-compressed ;;
*) die "--store $STORE: expected 1 (the stored form) or 0 (the compressed one)" ;;
esac
OUT=${OUT:-$DIST}
BINARY="$DIST/$NAME"
[ -x "$BINARY" ] || die "no binary at $BINARY: run make binary ARCH=$ARCH STORE=$STORE first"
if [ ! -f "$BINARY.cdx.json" ] || [ ! -f "$BINARY.buildinfo" ]; then
	die "$BINARY has no .cdx.json or .buildinfo beside it: build it with make binary ARCH=$ARCH"
fi
PYTHON=${PYTHON:-"$REPO/.cache/build-venv-$("$REPO/build/freeze.sh" --host-arch)/bin/python"}
[ -x "$PYTHON" ] || die "no build venv at $PYTHON (PyInstaller reads the binary): make binary makes it"
command -v dpkg-deb >/dev/null 2>&1 || die "dpkg-deb is missing: run make deb-deps"

SOURCE_DATE_EPOCH=$(sed -n 's/^source_date_epoch=//p' "$BINARY.buildinfo")
[ -n "$SOURCE_DATE_EPOCH" ] || die "$BINARY.buildinfo has no source_date_epoch"
export SOURCE_DATE_EPOCH

# A staging tree of its own (two builds may run at once: the tests, the ARM pass), removed
# on exit.
mkdir -p "$REPO/build/work" "$OUT"
WORK=$(mktemp -d "$REPO/build/work/deb-$ARCH.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
trap 'exit 130' INT TERM HUP
STAGE="$WORK/root"
mkdir -p "$STAGE"
# A top-level make (none of an outer make's flags), as a firmware build calls it.
env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL make -s -C "$REPO" install DESTDIR="$STAGE" \
	PREFIX=/usr INIT=systemd FORM=onefile STORE="$STORE" ARCH="$ARCH" DIST="$DIST" CA_CERT= >/dev/null
NAME=$("$PYTHON" "$REPO/build/deb.py" --root "$STAGE" --binary "$BINARY" --arch "$ARCH" \
	--maintainer "${DEB_MAINTAINER:-}" --revision "${DEB_REVISION:-1}") || die "cannot make the package's metadata"
# The tree's modes as install.mk and deb.py set them, whatever the umask made of the rest.
find "$STAGE" -type d -exec chmod 0755 {} +
dpkg-deb --root-owner-group -Zxz --build "$STAGE" "$OUT/$NAME" >/dev/null
echo "deb.sh: wrote $OUT/$NAME" >&2
echo "$OUT/$NAME"
