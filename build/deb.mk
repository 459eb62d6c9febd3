# The Debian package, one per architecture. Included by the Makefile; uses its ARCH,
# STORE, BUILD_PYTHON, TEST_BINARY, INSTALL_COMMANDS and BIN.
#
#   make deb [ARCH=x86_64|aarch64|armhf] [STORE=1|0] [DEB_DIST=dist/ARCH]
#       dist/ARCH/caramel-embedded_VERSION-1_DEBARCH.deb (amd64, arm64, armhf) from the
#       one-file binary `make binary ARCH=... STORE=...` left in DEB_DIST (the stored form
#       by default, the compressed one with STORE=0), then lintian on it
#       (an error fails; warnings are shown). build/deb.sh says what goes in and how.
#   make deb-deps      the Debian packages these use: dpkg-dev's dpkg-deb, lintian, and
#                      debootstrap for the root that the tests install the package into
#   make test-deb      the package's tests on the host's test binary
#                      (tests/firmware/test_deb.py; the ARM ones run in `make test-arm`)
#
# DEB_MAINTAINER="Name <address>" and DEB_REVISION=N (environment or make variables)
# set the Maintainer field and the Debian revision.

DEB_DIST ?= dist/$(ARCH)
DEB_PACKAGES := dpkg-deb:dpkg lintian:lintian debootstrap:debootstrap

.PHONY: deb deb-deps test-deb

deb-deps:
	@$(call INSTALL_COMMANDS,$(DEB_PACKAGES))

# build/elf_report.py reads the binary's archive with PyInstaller: the host's build venv.
# Where none exists yet (a fresh clone that froze only ARM binaries), freezing the host's
# test binary makes it.
deb: deb-deps
	@[ -x "$(BUILD_PYTHON)" ] || $(MAKE) --no-print-directory $(TEST_BINARY)
	@deb=$$(DEB_MAINTAINER="$(DEB_MAINTAINER)" DEB_REVISION="$(DEB_REVISION)" \
		build/deb.sh --arch $(ARCH) --store $(STORE) --dist $(DEB_DIST) \
		--python $(abspath $(BUILD_PYTHON))) && \
	lintian --fail-on error "$$deb" 2>/dev/null

test-deb: venv deb-deps $(TEST_BINARY)
	CARAMEL_EMBEDDED_BINARY=$(abspath $(TEST_BINARY)) $(BIN)/python -m pytest -q tests/firmware/test_deb.py

# The binary pass of `make test` and the ARM pass run the package's tests: their tools
# come with the other system packages.
system-deps: deb-deps
