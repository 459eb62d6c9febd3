#!/bin/sh
# Freeze caramel-embedded with PyInstaller: the one-file binary or the one-dir bundle.
#
#   build/freeze.sh --arch ARCH --form onefile|onedir [--store yes|no] [--ca-cert PATH] [--dist DIR]
#   build/freeze.sh --host-arch          print the ARCH name of this machine
#
# ARCH is x86_64, aarch64 or armhf; the output goes to DIR (default dist/ARCH):
# DIR/caramel-embedded (onefile, stored: the default), DIR/caramel-embedded-compressed
# (onefile, --store no) or DIR/caramel-embedded-dir/caramel-embedded (onedir), with
# DIR/<output>.buildinfo and its software bill of materials DIR/<output>.cdx.json beside
# it (build/sbom.py). --store says how the one-file binary holds the files its launcher
# unpacks at every start: stored as they are, for a compressed root filesystem, or
# zlib-compressed, for raw flash (build/caramel-embedded.spec says why). The two forms
# have names of their own so that both can sit in one directory (a release carries both)
# and a file's name alone says which it is; the stored form keeps the plain name, being
# the default that `make binary` builds and the firmware recipes install. The same script
# is meant to run inside a foreign architecture's root under emulation, so it takes the
# architecture as a parameter and checks that it is the one it runs on.
#
# Why each step:
# - The tools come from build/requirements.lock (hashes, --require-hashes) into a venv of
#   their own (.cache/build-venv-ARCH, or $BUILD_VENV), never the test venv, so that the
#   frozen bytes depend on the lock and not on what tests installed. A stamp holding the
#   locks' digest (and this script's and build/launcher_patch.py's) lets a later build
#   reuse the venv.
# - PyInstaller is built from its sdist with PYI_STATIC_ZLIB=1: its launcher then carries
#   zlib instead of needing the target's libz.so.1, and with build/launcher_patch.py's
#   one change to its launcher (the kernel copies the stored files). Its build backend
#   (hatchling) is pinned too (build/backend.lock) and used without build isolation, so
#   no unpinned download takes part in the build.
# - SOURCE_DATE_EPOCH (the commit's time unless already set) and PYTHONHASHSEED=0 make two
#   builds of one commit byte-identical.
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)
BUILD_DIR="$REPO/build"

die() {
	echo "freeze.sh: $*" >&2
	exit 2
}

host_arch() {
	case "$(uname -m)" in
	x86_64 | amd64) echo x86_64 ;;
	aarch64 | arm64) echo aarch64 ;;
	armv7l | armv7 | armhf) echo armhf ;;
	*) uname -m ;;
	esac
}

ARCH=""
FORM=""
STORE=""
CA_CERT=""
DIST=""
while [ $# -gt 0 ]; do
	case "$1" in
	--host-arch)
		host_arch
		exit 0
		;;
	--arch) ARCH=${2:?--arch needs a value} && shift 2 ;;
	--form) FORM=${2:?--form needs a value} && shift 2 ;;
	--store) STORE=${2:?--store needs a value} && shift 2 ;;
	--ca-cert) CA_CERT=${2:-} && shift 2 ;;
	--dist) DIST=${2:?--dist needs a value} && shift 2 ;;
	*) die "unknown argument: $1 (see the comment at the top of build/freeze.sh)" ;;
	esac
done

[ -n "$ARCH" ] || ARCH=$(host_arch)
case "$ARCH" in
x86_64 | aarch64 | armhf) ;;
*) die "ARCH=$ARCH: expected x86_64, aarch64 or armhf" ;;
esac
case "$FORM" in
onefile | onedir) ;;
*) die "--form onefile|onedir is required" ;;
esac
case "$FORM:$STORE" in
onefile: | onefile:yes) STORE=yes OUTPUT_NAME=caramel-embedded ;;
onefile:no) OUTPUT_NAME=caramel-embedded-compressed ;;
onefile:*) die "--store $STORE: expected yes or no" ;;
onedir:) OUTPUT_NAME=caramel-embedded-dir ;;
*) die "--store is for the one-file form (the bundle unpacks nothing)" ;;
esac
if [ "$ARCH" != "$(host_arch)" ]; then
	die "ARCH=$ARCH on a $(host_arch) machine: run build/freeze-in-root.sh --arch $ARCH (foreign architectures build in an emulated root)"
fi

DIST=${DIST:-"$REPO/dist/$ARCH"}
mkdir -p "$DIST"
DIST=$(cd "$DIST" && pwd)
VENV=${BUILD_VENV:-"$REPO/.cache/build-venv-$ARCH"}
PYTHON=${PYTHON:-python3}
# One work directory per output.
case "$OUTPUT_NAME" in
caramel-embedded-compressed) WORK="$REPO/build/work/$ARCH/onefile-compressed" ;;
*) WORK="$REPO/build/work/$ARCH/$FORM" ;;
esac
# One freeze of an architecture at a time: they share the build venv (a first freeze makes
# it), the work directory of their form and PyInstaller's cache, whose index two freezes
# side by side read half-written. Freezes started together (make -j, the test workers, a
# test that freezes while another does) wait their turn here.
mkdir -p "$REPO/.cache"
exec 9>"$REPO/.cache/freeze-$ARCH.lock"
flock 9

# --- the build venv ------------------------------------------------------------------
venv_stamp() {
	cat "$BUILD_DIR/backend.lock" "$BUILD_DIR/requirements.lock" "$BUILD_DIR/freeze.sh" \
		"$BUILD_DIR/launcher_patch.py" |
		"$PYTHON" -c 'import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest(), sys.version.split()[0])'
}

make_venv() {
	shared=$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_config_var("Py_ENABLE_SHARED") or 0)')
	if [ "$shared" != 1 ]; then
		die "$PYTHON has no shared libpython, which PyInstaller needs (on Debian: apt-get install libpython3-dev or libpython3.11)"
	fi
	echo "freeze.sh: making the build venv $VENV from build/*.lock" >&2
	rm -rf "$VENV"
	"$PYTHON" -m venv "$VENV"
	# The build backend first, then everything else without build isolation: only hashed,
	# pinned files take part. PyInstaller from its sdist compiles its launcher here.
	"$VENV/bin/pip" install --quiet --disable-pip-version-check --require-hashes --no-deps \
		--only-binary :all: -r "$BUILD_DIR/backend.lock"
	# PyInstaller's sdist, hash-checked from the lock, unpacked and given our one change to
	# its launcher (build/launcher_patch.py: the kernel copies the stored entries; it stops
	# the build if the sources are not the ones the change was written for), then built
	# from that directory. The rest of the lock is installed as it stands.
	sdist="$VENV/pyinstaller-sdist"
	mkdir -p "$sdist"
	"$PYTHON" "$BUILD_DIR/launcher_patch.py" split-lock "$BUILD_DIR/requirements.lock" \
		pyinstaller "$sdist/pyinstaller.lock" "$sdist/rest.lock"
	"$VENV/bin/pip" download --quiet --disable-pip-version-check --require-hashes --no-deps \
		--no-build-isolation --no-binary :all: --dest "$sdist" -r "$sdist/pyinstaller.lock"
	set -- "$sdist"/pyinstaller-*.tar.gz
	[ $# = 1 ] && [ -f "$1" ] || die "expected one PyInstaller sdist in $sdist, found: $*"
	tar -xzf "$1" -C "$sdist"
	set -- "$sdist"/pyinstaller-*/
	[ $# = 1 ] && [ -d "$1" ] || die "expected one unpacked PyInstaller sdist in $sdist, found: $*"
	"$PYTHON" "$BUILD_DIR/launcher_patch.py" apply "$1" ||
		die "PyInstaller's launcher sources cannot take build/launcher_patch.py's change"
	# Large-file support for the launcher: without it, a 32-bit launcher (armhf) fails to
	# list its unpack directory on file systems with 64-bit inode numbers (ext4 seen from
	# qemu on a 64-bit host) and leaves the _MEI directory behind. Harmless on 64-bit.
	PYI_STATIC_ZLIB=1 CFLAGS="${CFLAGS:-} -D_FILE_OFFSET_BITS=64" "$VENV/bin/pip" install --quiet --disable-pip-version-check \
		--no-deps --no-build-isolation "$1"
	"$VENV/bin/pip" install --quiet --disable-pip-version-check \
		--require-hashes --no-deps --no-build-isolation -r "$sdist/rest.lock"
	rm -rf "$sdist"
	launcher_dir=$("$VENV/bin/python" -c 'import os, PyInstaller; from PyInstaller import PLATFORM; print(os.path.join(os.path.dirname(PyInstaller.__file__), "bootloader", PLATFORM))')
	for launcher in "$launcher_dir/run" "$launcher_dir/run_d"; do
		if ! "$VENV/bin/python" "$BUILD_DIR/elf_report.py" --needs-only-libc "$launcher"; then
			rm -rf "$VENV"
			die "PyInstaller's launcher $launcher needs more than the C library (zlib not static?)"
		fi
	done
	venv_stamp >"$VENV/.stamp"
}

if [ ! -x "$VENV/bin/pyinstaller" ] || [ "$(cat "$VENV/.stamp" 2>/dev/null)" != "$(venv_stamp)" ]; then
	make_venv
fi

# --- reproducibility -----------------------------------------------------------------
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null) ||
		die "not a git checkout: set SOURCE_DATE_EPOCH to the sources' time"
fi
export SOURCE_DATE_EPOCH
export PYTHONHASHSEED=0
# PyInstaller's cache of stripped libraries stays with the other build caches.
export PYINSTALLER_CONFIG_DIR="$REPO/.cache/pyinstaller-$ARCH"

# --- the CA to embed ------------------------------------------------------------------
rm -rf "$WORK"
mkdir -p "$WORK"
CA_FINGERPRINT=none
set --
if [ -n "$CA_CERT" ]; then
	# Checked by the client's own reader, so the binary will accept what it embeds; the
	# certificate is re-encoded as one canonical PEM block.
	CA_FINGERPRINT=$(PYTHONPATH="$REPO" "$VENV/bin/python" "$BUILD_DIR/check_ca.py" \
		"$CA_CERT" "$WORK/embedded_ca.pem") || die "CA_CERT=$CA_CERT cannot be embedded"
	set -- --ca-cert "$WORK/embedded_ca.pem"
fi

# --- freeze ------------------------------------------------------------------------
if [ "$FORM" = onefile ]; then
	set -- --store "$STORE" "$@"
fi
"$VENV/bin/pyinstaller" --noconfirm --log-level WARN \
	--distpath "$DIST" --workpath "$WORK" \
	"$BUILD_DIR/caramel-embedded.spec" -- --form "$FORM" "$@"

OUTPUT="$DIST/$OUTPUT_NAME"
if [ "$FORM" = onefile ]; then
	# The form the name claims, read back from the archive's table of contents.
	if ! "$VENV/bin/python" "$BUILD_DIR/archive_report.py" --expect "$STORE" "$OUTPUT" >&2; then
		rm -f "$OUTPUT"
		die "$OUTPUT did not hold its unpacked files as --store $STORE says: removed"
	fi
fi

# --- the software bill of materials ---------------------------------------------------
# Made from what the output really carries, written beside it and into its launcher (an
# ELF section read without running it); build/sbom.py says why and how.
"$VENV/bin/python" "$BUILD_DIR/sbom.py" --embed "$OUTPUT" "$OUTPUT.cdx.json" ||
	die "cannot make the software bill of materials of $OUTPUT"
{
	echo "arch=$ARCH"
	echo "form=$FORM"
	[ "$FORM" = onedir ] || echo "store=$STORE"
	echo "version=$(PYTHONPATH="$REPO" "$VENV/bin/python" -c 'import caramel_embedded; print(caramel_embedded.__version__)')"
	echo "embedded_ca_sha256=$CA_FINGERPRINT"
	echo "source_date_epoch=$SOURCE_DATE_EPOCH"
	echo "python=$("$VENV/bin/python" -c 'import platform; print(platform.python_version())')"
	echo "pyinstaller=$("$VENV/bin/pyinstaller" --version)"
	echo "lock_sha256=$(cat "$BUILD_DIR/backend.lock" "$BUILD_DIR/requirements.lock" | sha256sum | cut -d' ' -f1)"
} >"$OUTPUT.buildinfo"
echo "freeze.sh: wrote $OUTPUT" >&2
