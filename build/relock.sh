#!/bin/sh
# Renew the build's lock files from build/requirements.in and build/backend.in.
#
#   build/relock.sh
#
# pip-compile (pip-tools, in a throwaway venv) resolves the newest versions the .in files
# allow and writes every file's SHA-256 for every platform PyPI has (x86_64, aarch64,
# armv7l wheels, and the sdists), so one lock serves every ARCH. The backend lock pins what
# builds PyInstaller's sdist (hatchling) and cffi's where no wheel exists (setuptools).
# Index options are not written into the locks: they come from the machine's pip config.
# Review the diff; the next freeze rebuilds the build venv because the locks changed.
set -eu

BUILD_DIR=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
TOOLS=$(mktemp -d)
trap 'rm -rf "$TOOLS"' EXIT

"$PYTHON" -m venv "$TOOLS/venv"
"$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check pip-tools
for name in requirements backend; do
	(cd "$BUILD_DIR" && "$TOOLS/venv/bin/pip-compile" --quiet --generate-hashes --allow-unsafe \
		--no-header --strip-extras --no-emit-index-url --no-emit-find-links \
		--output-file "$name.lock" "$name.in")
done
echo "relock.sh: wrote $BUILD_DIR/requirements.lock and $BUILD_DIR/backend.lock" >&2
