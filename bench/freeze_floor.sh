#!/bin/sh
# Freeze the bench's floor (bench/floor.py, bench/floor.spec) as a one-dir bundle, for
# `make bench` to time beside the client's bundle.
#
#   bench/freeze_floor.sh ARCH DIR     writes DIR/floor/floor (and DIR/floor.stamp)
#
# It uses the build venv that build/freeze.sh makes for the client (.cache/build-venv-ARCH)
# and the same build environment, so both are frozen by the same PyInstaller and Python.
# A stamp holding the digest of the inputs (these three files and the venv's own stamp)
# lets later benches reuse the bundle instead of freezing it again.
set -eu

REPO=$(cd "$(dirname "$0")/.." && pwd)
ARCH=${1:?usage: bench/freeze_floor.sh ARCH DIR}
OUTPUT=${2:?usage: bench/freeze_floor.sh ARCH DIR}
VENV="$REPO/.cache/build-venv-$ARCH"
STAMP="$OUTPUT/floor.stamp"

if [ ! -x "$VENV/bin/pyinstaller" ]; then
	echo "freeze_floor.sh: no build venv $VENV: build/freeze.sh makes it (make bench does)" >&2
	exit 2
fi
digest=$(cat "$REPO/bench/floor.py" "$REPO/bench/floor.spec" "$0" "$VENV/.stamp" \
	"$REPO/build/caramel_startup.py" "$REPO/build/standins/urllib3/http2/__init__.py" | sha256sum)
if [ -x "$OUTPUT/floor/floor" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$digest" ]; then
	exit 0
fi

echo "freeze_floor.sh: freezing bench/floor.py into $OUTPUT/floor" >&2
rm -rf "$OUTPUT/floor" "$OUTPUT/work" "$STAMP"
mkdir -p "$OUTPUT"
# As build/freeze.sh does, but with a cache of stripped libraries of its own: this freeze
# never writes where a concurrent freeze of the client reads.
if [ -z "${SOURCE_DATE_EPOCH:-}" ]; then
	SOURCE_DATE_EPOCH=$(git -C "$REPO" log -1 --format=%ct 2>/dev/null || date +%s)
fi
export SOURCE_DATE_EPOCH
export PYTHONHASHSEED=0
export PYINSTALLER_CONFIG_DIR="$OUTPUT/pyinstaller"
"$VENV/bin/pyinstaller" --noconfirm --log-level WARN \
	--distpath "$OUTPUT" --workpath "$OUTPUT/work" "$REPO/bench/floor.spec"
echo "$digest" >"$STAMP"
