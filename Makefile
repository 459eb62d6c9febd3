# The single entry point: every target works on a fresh clone.
#   make demo   walk the whole certificate lifecycle against a local, real Caramel server
#   make demo-server   leave that server running to try the client on (demo-sign, demo-stop)
#   make test   the package suite and the real-server suite, against the package and then
#               against the host's one-file binary (frozen once, reused while unchanged)
#   make lint   ruff (format + lint) and mypy
#   make binary [ARCH=x86_64|aarch64|armhf] [CA_CERT=ca.pem] [STORE=1|0]
#               dist/ARCH/caramel-embedded, the unpacked files stored (for a compressed root
#               filesystem), or with STORE=0 dist/ARCH/caramel-embedded-compressed (raw flash)
#   make bundle [ARCH=...] [CA_CERT=...]     the one-dir form: dist/ARCH/caramel-embedded-dir/
#   make bench  start-up, memory and disk figures of package, binary and bundle vs curl
#   make image-size   both one-file forms and the bundle in squashfs images (xz, zstd, gzip, lzo)
#   make man    caramel-embedded(1) from the option table, into firmware-integration/
#   make set-version VERSION=X.Y.Z   the version, wherever it is written
#   make release [ARCHES=...]   every architecture's builds into dist/release/ (build/release.mk)
#   make fleet  1,000 devices against one real Caramel behind nginx: bytes, CPU, capacity
#               (DB=postgresql: on a throwaway PostgreSQL cluster, 1 and 2 Caramel processes)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# What the demo needs: nginx fronts Caramel; openssl and curl check the certificate the
# client installs, as a user would. The suites need strace besides, and groff to show the
# man page as `man` does (and, through firmware-deps, the firmware checks' tools). tpm2
# mode's tests need a software TPM (swtpm), tpm2-tools to put it in lockout and look at
# what a run left loaded in it, and the tpm2-openssl provider the client uses (a module,
# not a command: TPM_PROVIDER names it).
DEMO_PACKAGES   := nginx openssl curl
TPM_PACKAGES    := swtpm swtpm_setup:swtpm-tools tpm2_getcap:tpm2-tools
TPM_PROVIDER    := tpm2-openssl
SYSTEM_PACKAGES := $(DEMO_PACKAGES) strace groff:groff-base $(TPM_PACKAGES)

.PHONY: all venv system-deps test test-package test-binary test-bundle test-unit test-e2e \
	lint format demo demo-deps demo-server demo-sign demo-stop clean binary bundle bench \
	build-deps bench-deps trim-report man test-compressed image-size set-version fuzz

# --- freezing (build/freeze.sh holds the steps, build/caramel-embedded.spec the choices) ---
HOST_ARCH := $(shell build/freeze.sh --host-arch)
ARCH      ?= $(HOST_ARCH)
CA_CERT   ?=
# 1: the one-file binary holds the files it unpacks at every start stored (a compressed root
# filesystem compresses them once, and better); 0: zlib-compressed, for raw flash.
STORE     ?= 1
STORE_1   := yes
STORE_0   := no
# The tests freeze the host's binary without a CA (the suites pass --ca-cert; one test
# embeds a CA itself) into a place of their own, so `make binary CA_CERT=...` never changes
# what the tests run, and a rebuild happens only when something that goes into it changed.
# TEST_DIST_ROOT/ARCH: the test freezes of each architecture (make release-check points it
# elsewhere for its second, fresh build).
TEST_DIST_ROOT ?= .cache/test-dist
TEST_DIST   := $(TEST_DIST_ROOT)/$(HOST_ARCH)
TEST_BINARY := $(TEST_DIST)/caramel-embedded
TEST_COMPRESSED := $(TEST_DIST)/caramel-embedded-compressed
TEST_BUNDLE := $(TEST_DIST)/caramel-embedded-dir/caramel-embedded
FREEZE_INPUTS := $(wildcard caramel_embedded/*.py) build/freeze.sh build/caramel-embedded.spec \
	build/check_ca.py build/elf_report.py build/sbom.py build/archive_report.py \
	build/launcher_patch.py \
	build/requirements.lock build/backend.lock \
	build/caramel_startup.py $(wildcard build/standins/*/*/*.py)
# Where a test runs is said by markers alone (pyproject.toml lists them), and each pass picks
# its tests with `-m`. A test module marks itself: `in_process`, the tests of modules in this
# process (the package pass only: CARAMEL_EMBEDDED_CMD cannot change them); `arm`, the
# process-level tests that the ARM pass runs too (build/arm.mk). A folder marks all of its
# tests through its conftest.py: tests/frozen `onefile_only` (they need the one-file binary:
# the binary pass only), tests/firmware `firmware` (not in the package pass; those that run
# the binary skip without a one-file one), tests/arm `arm_only` (the ARM builds under
# emulation: the ARM pass only, build/arm.mk).

all: test

# The end of every *-deps recipe: install the Debian packages it listed in $missing, if any.
INSTALL_MISSING = if [ -n "$$missing" ]; then build/apt-install.sh $$missing; fi

# $(call INSTALL_COMMANDS,LIST): install the Debian packages of the commands of LIST that
# are missing (COMMAND:PACKAGE, or COMMAND alone where the package has its name).
INSTALL_COMMANDS = missing=""; \
	for p in $(1); do PATH="$$PATH:/usr/sbin:/sbin" command -v $${p%%:*} >/dev/null 2>&1 || missing="$$missing $${p\#*:}"; done; \
	$(INSTALL_MISSING)

demo-deps:
	@$(call INSTALL_COMMANDS,$(DEMO_PACKAGES))

# System packages the tests need.
system-deps:
	@$(call INSTALL_COMMANDS,$(SYSTEM_PACKAGES))
	@missing=""; dpkg-query -W -f='$${Status}' $(TPM_PROVIDER) 2>/dev/null | grep -q "ok installed" \
		|| missing="$(TPM_PROVIDER)"; $(INSTALL_MISSING)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test]'
	touch $@

venv: $(STAMP)

test: test-package test-binary test-compressed

# The package and binary passes run their test files on TEST_JOBS workers (pytest-xdist),
# each file whole on one worker, so a file's fixtures (a Caramel stack, a freeze, a .deb)
# are made once. Most of a test's time is waiting on the processes and servers it starts,
# so two workers overlap that waiting even on two cores. TEST_JOBS=0: one process.
TEST_JOBS ?= 2
XDIST = $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist loadfile)

# tests/frozen and tests/firmware need the frozen binary: they run in the binary pass.
test-package: venv system-deps
	$(BIN)/python -m pytest -q $(XDIST) -m "not onefile_only and not firmware and not arm_only"

test-binary: venv system-deps $(TEST_BINARY) $(TEST_COMPRESSED) $(TEST_BUNDLE)
	$(BUILD_PYTHON) build/elf_report.py $(TEST_BINARY)
	CARAMEL_EMBEDDED_CMD=$(abspath $(TEST_BINARY)) \
		$(BIN)/python -m pytest -q $(XDIST) -m "not in_process and not arm_only"

# The binary pass runs the stored one-file form (the default, shipped form) through every
# suite; tests/frozen/test_build.py checks there the compressed form's build (its bytes
# again, its archive). This pass runs the compressed form through what its unpacking can
# change: the real-server lifecycle and the launcher's tests.
test-compressed: venv system-deps $(TEST_COMPRESSED)
	CARAMEL_EMBEDDED_CMD=$(abspath $(TEST_COMPRESSED)) \
		$(BIN)/python -m pytest -q -m "compressed_too and not in_process"

# The same suites against the one-dir bundle (not part of `make test`, to keep it short).
test-bundle: venv system-deps $(TEST_BUNDLE)
	CARAMEL_EMBEDDED_CMD=$(abspath $(TEST_BUNDLE)) \
		$(BIN)/python -m pytest -q -m "not in_process and not onefile_only and not arm_only"

BUILD_PYTHON := .cache/build-venv-$(HOST_ARCH)/bin/python

# The freeze compiles PyInstaller's launcher (gcc) and strips libraries (binutils).
build-deps:
	@missing=""; \
	command -v gcc >/dev/null 2>&1 || missing="$$missing gcc"; \
	command -v strip >/dev/null 2>&1 || missing="$$missing binutils"; \
	$(INSTALL_MISSING)

$(TEST_BINARY): $(FREEZE_INPUTS) | build-deps
	build/freeze.sh --arch $(HOST_ARCH) --form onefile --store yes --dist $(TEST_DIST)

# One after the other (order only), as the ARM freezes: freezes side by side (make -j)
# share PyInstaller's cache of processed libraries, and one read its index while the other
# was writing it (seen with make -j2 on an empty cache).
$(TEST_COMPRESSED): $(FREEZE_INPUTS) | build-deps $(TEST_BINARY)
	build/freeze.sh --arch $(HOST_ARCH) --form onefile --store no --dist $(TEST_DIST)

$(TEST_BUNDLE): $(FREEZE_INPUTS) | build-deps $(TEST_COMPRESSED)
	build/freeze.sh --arch $(HOST_ARCH) --form onedir --dist $(TEST_DIST)

binary: build-deps
	build/freeze-in-root.sh --arch $(ARCH) --form onefile --store $(or $(STORE_$(STORE)),$(STORE)) \
		--ca-cert "$(CA_CERT)"

bundle: build-deps
	build/freeze-in-root.sh --arch $(ARCH) --form onedir --ca-cert "$(CA_CERT)"

# Which modules the binary carries that no tested path imports, and a check that no
# excluded one is imported (build/unused_modules.py): run after changing imports or EXCLUDES.
# Test failures in the recording run are the package pass's business; the report is ours.
TRIM_LOG := .cache/trim-imports.log
trim-report: venv system-deps $(TEST_BUNDLE)
	rm -f $(TRIM_LOG)
	CARAMEL_EMBEDDED_CMD="$(abspath $(BIN)/python) $(abspath build/unused_modules.py) --record \
		$(abspath $(TRIM_LOG))" $(BIN)/python -m pytest -q \
		-m "not in_process and not onefile_only and not arm_only" || true
	$(BIN)/python build/unused_modules.py --report $(TRIM_LOG) \
		build/work/$(HOST_ARCH)/onedir/caramel-embedded

# GNU time measures peak RSS, strace counts file bytes (bench/measure.py says why),
# mksquashfs tells what each form costs in a compressed firmware root.
bench-deps:
	@missing=""; \
	[ -x /usr/bin/time ] || missing="$$missing time"; \
	command -v strace >/dev/null 2>&1 || missing="$$missing strace"; \
	PATH="$$PATH:/usr/sbin" command -v mksquashfs >/dev/null 2>&1 || missing="$$missing squashfs-tools"; \
	$(INSTALL_MISSING)

# Figures, not a test: the table and PASS/FAIL per goal (docs/performance.md), and
# beside them the floors (bench/floor.py: a frozen Python doing the request with ssl alone,
# and with urllib3 imported), frozen by the test binary's build venv, again only when changed.
BENCH_FLOOR := .cache/bench-floor
bench: venv system-deps bench-deps $(TEST_BINARY) $(TEST_COMPRESSED) $(TEST_BUNDLE)
	bench/freeze_floor.sh $(HOST_ARCH) $(BENCH_FLOOR)
	$(BIN)/python bench/run.py --binary $(TEST_BINARY) --compressed $(TEST_COMPRESSED) \
		--bundle $(TEST_BUNDLE) --floor $(BENCH_FLOOR)/floor/floor \
		--sizes-from $(dir $(TEST_DIST)) --sizes-from dist --arm-dist $(dir $(TEST_DIST))
	$(BIN)/python bench/tpm_steps.py --runs 7

# The squashfs part of `make bench` alone (bench/image_size.py): both one-file forms and the
# bundle of every architecture built (the tests' builds, then dist/), four compressors.
image-size: venv bench-deps $(TEST_BINARY) $(TEST_COMPRESSED) $(TEST_BUNDLE)
	$(BIN)/python bench/image_size.py $(dir $(TEST_DIST)) dist

test-unit: venv
	$(BIN)/python -m pytest -q -m "not e2e and not onefile_only and not arm_only"

test-e2e: venv system-deps
	$(BIN)/python -m pytest -q -m e2e

lint: venv
	$(BIN)/ruff format --check caramel_embedded tests testbed build bench for-caramel-operators fuzz
	$(BIN)/ruff check caramel_embedded tests testbed build bench for-caramel-operators fuzz
	$(BIN)/mypy
	$(BIN)/lint-imports

format: venv
	$(BIN)/ruff format caramel_embedded tests testbed build bench for-caramel-operators fuzz
	$(BIN)/ruff check --fix caramel_embedded tests testbed build bench for-caramel-operators fuzz

# Coverage-guided fuzzing of every parser (fuzz/, atheris): FUZZ_SECONDS each, one target
# after the other; per target the executions, coverage and findings; 1 on any finding.
# atheris lives in a venv of its own (the `fuzz` extra), never in the test venv.
FUZZ_VENV    := .cache/fuzz-venv
FUZZ_SECONDS ?= 12
FUZZ_NICE    ?= 0

$(FUZZ_VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(FUZZ_VENV)
	$(FUZZ_VENV)/bin/pip install -q --upgrade pip
	$(FUZZ_VENV)/bin/pip install -q -e '.[fuzz]'
	touch $@

fuzz: $(FUZZ_VENV)/.installed
	$(FUZZ_VENV)/bin/python -m fuzz.run --seconds $(FUZZ_SECONDS) --nice $(FUZZ_NICE) \
		$(if $(FUZZ_TARGETS),--targets $(FUZZ_TARGETS))

demo: venv demo-deps
	$(BIN)/python -m tests.e2e.demo

# The demo's server left running (detached; its processes and files in .cache/demo-server),
# to try the client on: it prints the URL, the CA file, the client's command, how to sign
# (make demo-sign: every waiting request) and how to stop (make demo-stop).
demo-server: venv demo-deps
	@$(BIN)/python -m tests.e2e.demo_server start

demo-sign: venv
	@$(BIN)/python -m tests.e2e.demo_server sign

demo-stop: venv
	@$(BIN)/python -m tests.e2e.demo_server stop

# A demo server still running is stopped first: its state goes with .cache.
# A release's version, written wherever it is written (build/set_version.py says where).
set-version:
	@test -n "$(VERSION)" || { echo "set-version: give VERSION=X.Y.Z" >&2; exit 2; }
	$(PYTHON) build/set_version.py $(VERSION)

# The man page is kept in the tree (make install needs no Python): write it again after
# changing an option; tests/test_manpage.py fails until the tree holds what this writes.
man: venv
	$(BIN)/python build/manpage.py firmware-integration/caramel-embedded.1

clean:
	@if [ -f .cache/demo-server/state.json ] && [ -x $(BIN)/python ]; then \
		$(BIN)/python -m tests.e2e.demo_server stop; fi
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .cache build/work dist

# Targets kept beside what they build: ARM roots and test-arm, firmware installation.
-include build/arm.mk
-include firmware-integration/install.mk
-include bench/fleet.mk
-include build/deb.mk
-include build/release.mk
