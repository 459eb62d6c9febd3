# The release. Included by the Makefile; uses its PYTHON, TEST_DIST_ROOT, TEST_BINARY,
# BUILD_PYTHON and deb-deps (build/deb.mk), and the freeze rules of the Makefile and
# build/arm.mk.
#
#   make release [ARCHES="x86_64 aarch64 armhf"] [RELEASE_PREVIEW=1]
#       into dist/release/, for each architecture: caramel-embedded-VERSION-ARCH (the
#       stored one-file binary), caramel-embedded-compressed-VERSION-ARCH (the compressed
#       one), caramel-embedded-dir-VERSION-ARCH.tar.gz (the one-dir bundle),
#       caramel-embedded_VERSION-1_DEBARCH.deb (the stored form, as `make deb` packages it),
#       each one's SBOM as NAME.cdx.json (the .deb's binary is the stored form: its SBOM);
#       and SHA256SUMS (`sha256sum -c SHA256SUMS`).
#   make release-check [ARCHES=...]
#       the release, then the release a second time from fresh freezes (a dist, a
#       PyInstaller cache and build/work of their own: only the build venvs, made from
#       the locks, are shared), and every file compared byte for byte, one line each.
#
# The builds are the generic ones, without an embedded CA: the tests' own freezes
# (TEST_DIST_ROOT/ARCH, by the same rules), so what was tested is what ships. They are
# frozen again when a file that goes into them changed (make's rule), or when they are an
# earlier commit's (their SOURCE_DATE_EPOCH, `build/release.py stale`). A firmware team
# embeds its CA with `make binary CA_CERT=...`.
#
# A release is refused (one line, status 1) from a tree with uncommitted or untracked
# files, or when CHANGELOG.md has no section for the version in caramel_embedded/version.py;
# RELEASE_PREVIEW=1 builds it anyway and says so. DEB_MAINTAINER and DEB_REVISION are
# `make deb`'s. build/release.py holds the decisions.

ARCHES          ?= x86_64 aarch64 armhf
RELEASE_DIST    ?= dist/release
RELEASE_PREVIEW ?=
# The freezes of two architectures side by side (each emulated freeze keeps a core busy).
RELEASE_JOBS    ?= 2
RELEASE_DEBS    ?= build/work/release-debs
RELEASE_CHECK   := .cache/release-check
RELEASE_ARCHES  := x86_64 aarch64 armhf
RELEASE_FREEZES  = $(foreach a,$(ARCHES),$(addprefix $(TEST_DIST_ROOT)/$(a)/,caramel-embedded \
	caramel-embedded-compressed caramel-embedded-dir/caramel-embedded))

.PHONY: release release-check

release: deb-deps
	@$(if $(filter-out $(RELEASE_ARCHES),$(ARCHES)),echo "release: ARCHES=$(ARCHES): expected some of $(RELEASE_ARCHES)" >&2; exit 1)
	@$(PYTHON) build/release.py check $(if $(filter-out 0,$(RELEASE_PREVIEW)),--preview)
	@for arch in $(ARCHES); do $(PYTHON) build/release.py stale $(TEST_DIST_ROOT)/$$arch $$arch || exit 1; done
	$(MAKE) --no-print-directory -j$(RELEASE_JOBS) $(RELEASE_FREEZES)
	@[ -x "$(BUILD_PYTHON)" ] || $(MAKE) --no-print-directory $(TEST_BINARY)
	rm -rf $(RELEASE_DIST) $(RELEASE_DEBS)
	@for arch in $(ARCHES); do \
		deb=$$(DEB_MAINTAINER="$(DEB_MAINTAINER)" DEB_REVISION="$(DEB_REVISION)" \
			build/deb.sh --arch $$arch --store 1 --dist $(TEST_DIST_ROOT)/$$arch \
			--out $(RELEASE_DEBS)/$$arch --python $(abspath $(BUILD_PYTHON))) && \
		lintian --fail-on error "$$deb" 2>/dev/null || exit 1; \
	done
	$(PYTHON) build/release.py assemble --out $(RELEASE_DIST) --freezes $(TEST_DIST_ROOT) \
		--debs $(RELEASE_DEBS) $(ARCHES)

release-check:
	$(MAKE) --no-print-directory release
	rm -rf $(RELEASE_CHECK) $(addprefix build/work/,$(ARCHES)) $(addprefix .cache/pyinstaller-,$(ARCHES))
	$(MAKE) --no-print-directory release TEST_DIST_ROOT=$(RELEASE_CHECK)/freezes \
		RELEASE_DIST=$(RELEASE_CHECK)/release RELEASE_DEBS=$(RELEASE_CHECK)/debs
	$(PYTHON) build/release.py compare $(RELEASE_DIST) $(RELEASE_CHECK)/release
