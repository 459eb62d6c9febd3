# make fleet: a fleet of devices against one real Caramel 1.9.6 behind nginx, on loopback,
# measured (bench/fleet.py says what runs). Figures, never a test; it stops itself within
# 15 minutes. Included by the Makefile; uses its VENV/BIN and system-deps.
#
#   make fleet                                  1,000 devices, 6 clients at a time
#   make fleet FLEET_ARGS="--devices 50"        a quick look
#   CARAMEL_EMBEDDED_CMD=$PWD/dist/x86_64/caramel-embedded make fleet   the frozen binary
#
# The devices run the command testbed/command.py selects: the package (python -m
# caramel_embedded from the venv) unless CARAMEL_EMBEDDED_CMD names another.

FLEET_ARGS ?=

.PHONY: fleet
fleet: venv system-deps
	$(BIN)/python bench/fleet.py $(FLEET_ARGS)
