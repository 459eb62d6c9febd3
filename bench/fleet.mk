# make fleet: a fleet of devices against one real Caramel 1.9.6 behind nginx, on loopback,
# measured (bench/fleet.py says what runs). Figures, never a test; it stops itself within
# 15 minutes per database. Included by the Makefile; uses its VENV/BIN and system-deps.
#
#   make fleet                                  1,000 devices, 6 clients at a time, SQLite
#   make fleet DB=postgresql                    the same on a throwaway PostgreSQL cluster,
#                                               1 then 2 Caramel processes, SQLite beside
#   make fleet FLEET_ARGS="--devices 50"        a quick look
#   CARAMEL_EMBEDDED_CMD=$PWD/dist/x86_64/caramel-embedded make fleet   the frozen binary
#
# The devices run the command testbed/command.py selects: the package (python -m
# caramel_embedded from the venv) unless CARAMEL_EMBEDDED_CMD names another.

FLEET_ARGS ?=
DB ?= sqlite

.PHONY: fleet fleet-deps
fleet: venv system-deps fleet-deps
	$(BIN)/python bench/fleet.py --db $(DB) $(FLEET_ARGS)

# DB=postgresql: Debian's PostgreSQL server (bench/fleet.py runs a cluster of its own; the
# package's own cluster is not used). Its binaries are not on PATH: looked for where
# Debian puts them.
fleet-deps:
	@if [ "$(DB)" = postgresql ] && ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then \
		build/apt-install.sh postgresql; fi
