# Installing caramel-embedded into a firmware image, and the checks of what it installs.
# Included by the top Makefile; run from the repository's top directory.
#
#   make install DESTDIR=/path/to/rootfs PREFIX=/usr [FORM=onefile|onedir] [STORE=1|0] [ARCH=...]
#                [INIT=systemd|sysv|both|none] [CA_CERT=fleet-ca.pem] [DIST=dir]
#                [KEY_STORE=file|tpm2]
#   make test-firmware     the checks of firmware-integration/ (tests/firmware)
#   make firmware-deps     the Debian packages those checks use
#
# `make install` builds nothing: it installs the frozen binary that `make binary ARCH=...`
# (FORM=onefile) or `make bundle ARCH=...` (FORM=onedir) left in DIST (dist/ARCH), so a
# Yocto or Buildroot build that calls it needs no Python and no PyInstaller.
#
# What goes where (PREFIX=/usr, SYSCONFDIR=/etc):
#   FORM=onefile  /usr/bin/caramel-embedded                                   0755
#                 (STORE=1, the default: dist/ARCH/caramel-embedded, for a compressed root
#                 filesystem; STORE=0: dist/ARCH/caramel-embedded-compressed, for raw flash)
#   FORM=onedir   /usr/lib/caramel-embedded/{caramel-embedded,_internal/...}  0755/0644
#                 /usr/bin/caramel-embedded -> ../lib/caramel-embedded/caramel-embedded
#   INIT=systemd  /usr/lib/systemd/system/caramel-embedded.{service,timer}   0644
#                 /usr/lib/systemd/system/caramel-embedded-wait.service       0644
#                 /usr/lib/systemd/system/caramel-embedded-reload.{path,service} 0644
#                 /usr/share/caramel-embedded/caramel-reload.sh               0644
#   INIT=sysv     /etc/init.d/caramel-embedded (INIT_SCRIPT_NAME)             0755
#                 /usr/share/caramel-embedded/crontab                         0644
#   always        /etc/default/caramel-embedded                               0644
#                 /usr/share/caramel-embedded/caramel-ensure.sh               0644
#                 /usr/share/caramel-embedded/wait-for-certificate.conf       0644
#                 /usr/share/caramel-embedded/needs-certificate.conf          0644
#                 /usr/share/caramel-embedded/tpm2.conf                       0644
#                 /usr/share/man/man1/caramel-embedded.1 (MANDIR)             0644
#   CA_CERT=f     /etc/caramel/ca.pem (and CARAMEL_CA_CERT set to it)         0644
#   KEY_STORE=tpm2  CARAMEL_KEY_STORE=tpm2 in /etc/default/caramel-embedded, and with
#                 INIT=systemd the TPM's device for the units (docs/tpm.md):
#                 /usr/lib/systemd/system/caramel-embedded{,-wait}.service.d/tpm2.conf 0644
# Paths written inside the installed files (the binary, the defaults file, the init
# script) follow BINDIR, SYSCONFDIR, DATADIR and INITDIR.

ARCH ?= $(shell build/freeze.sh --host-arch)
DESTDIR ?=
PREFIX ?= /usr
FORM ?= onefile
INIT ?= systemd
DIST ?= dist/$(ARCH)
CA_CERT ?=
KEY_STORE ?= file
BINDIR ?= $(PREFIX)/bin
LIBDIR ?= $(PREFIX)/lib
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
SYSTEMD_UNITDIR ?= $(PREFIX)/lib/systemd/system
INITDIR ?= $(SYSCONFDIR)/init.d
INIT_SCRIPT_NAME ?= caramel-embedded
FIRMWARE_INIT = $(subst both,systemd sysv,$(INIT))

FIRMWARE_DIR := firmware-integration
FIRMWARE_SHARE = $(DATADIR)/caramel-embedded
FIRMWARE_BUNDLE_DIR = $(LIBDIR)/caramel-embedded
# The one-file form `make binary STORE=...` built (the top Makefile's STORE, default 1).
FIRMWARE_ONEFILE = $(if $(filter 0 no,$(STORE)),caramel-embedded-compressed,caramel-embedded)
# The installed files name the installed paths.
FIRMWARE_SED = sed \
	-e 's|/usr/bin/caramel-embedded|$(BINDIR)/caramel-embedded|g' \
	-e 's|:-caramel-embedded}|:-$(BINDIR)/caramel-embedded}|g' \
	-e 's|/etc/default/caramel-embedded|$(SYSCONFDIR)/default/caramel-embedded|g' \
	-e 's|/etc/init.d/caramel-embedded|$(INITDIR)/$(INIT_SCRIPT_NAME)|g' \
	-e 's|/usr/share/caramel-embedded/|$(FIRMWARE_SHARE)/|g'

.PHONY: install install-check install-binary install-init install-files firmware-deps \
	test-firmware

install: install-binary install-init install-files

install-check:
	@case "$(FORM)" in onefile|onedir) ;; \
	*) echo "install: FORM=$(FORM): expected onefile or onedir" >&2; exit 2;; esac
	@for i in $(FIRMWARE_INIT); do case "$$i" in systemd|sysv|none) ;; \
	*) echo "install: INIT=$(INIT): expected systemd, sysv, both or none" >&2; exit 2;; esac; done
	@case "$(KEY_STORE)" in file|tpm2) ;; \
	*) echo "install: KEY_STORE=$(KEY_STORE): expected file or tpm2" >&2; exit 2;; esac
	@if [ -n "$(CA_CERT)" ] && ! grep -q -- '-----BEGIN CERTIFICATE-----' "$(CA_CERT)"; then \
		echo "install: CA_CERT=$(CA_CERT) is not a PEM certificate" >&2; exit 2; fi

install-binary: install-check
ifeq ($(FORM),onedir)
	@test -x "$(DIST)/caramel-embedded-dir/caramel-embedded" || { \
		echo "install: no bundle at $(DIST)/caramel-embedded-dir: run make bundle ARCH=$(ARCH) first" >&2; exit 2; }
	rm -rf "$(DESTDIR)$(FIRMWARE_BUNDLE_DIR)" "$(DESTDIR)$(BINDIR)/caramel-embedded"
	install -d -m 0755 "$(DESTDIR)$(LIBDIR)" "$(DESTDIR)$(BINDIR)"
	install -d -m 0755 "$(DESTDIR)$(FIRMWARE_BUNDLE_DIR)"
	cp -R "$(DIST)/caramel-embedded-dir/." "$(DESTDIR)$(FIRMWARE_BUNDLE_DIR)/"
	chmod -R u=rwX,go=rX "$(DESTDIR)$(FIRMWARE_BUNDLE_DIR)"
	ln -s -r "$(DESTDIR)$(FIRMWARE_BUNDLE_DIR)/caramel-embedded" "$(DESTDIR)$(BINDIR)/caramel-embedded"
else
	@test -x "$(DIST)/$(FIRMWARE_ONEFILE)" || { \
		echo "install: no binary at $(DIST)/$(FIRMWARE_ONEFILE): run make binary ARCH=$(ARCH) STORE=$(STORE) first" >&2; exit 2; }
	rm -rf "$(DESTDIR)$(FIRMWARE_BUNDLE_DIR)" "$(DESTDIR)$(BINDIR)/caramel-embedded"
	install -D -m 0755 "$(DIST)/$(FIRMWARE_ONEFILE)" "$(DESTDIR)$(BINDIR)/caramel-embedded"
endif

install-init: install-check
ifneq ($(filter systemd,$(FIRMWARE_INIT)),)
	install -d -m 0755 "$(DESTDIR)$(SYSTEMD_UNITDIR)"
	$(FIRMWARE_SED) $(FIRMWARE_DIR)/systemd/caramel-embedded.service \
		>"$(DESTDIR)$(SYSTEMD_UNITDIR)/caramel-embedded.service"
	install -m 0644 $(FIRMWARE_DIR)/systemd/caramel-embedded.timer "$(DESTDIR)$(SYSTEMD_UNITDIR)/"
	$(FIRMWARE_SED) $(FIRMWARE_DIR)/systemd/caramel-embedded-wait.service \
		>"$(DESTDIR)$(SYSTEMD_UNITDIR)/caramel-embedded-wait.service"
	chmod 0644 "$(DESTDIR)$(SYSTEMD_UNITDIR)/caramel-embedded-wait.service"
	chmod 0644 "$(DESTDIR)$(SYSTEMD_UNITDIR)/caramel-embedded.service"
ifeq ($(KEY_STORE),tpm2)
	for unit in caramel-embedded caramel-embedded-wait; do \
		install -D -m 0644 $(FIRMWARE_DIR)/drop-in/tpm2.conf \
			"$(DESTDIR)$(SYSTEMD_UNITDIR)/$$unit.service.d/tpm2.conf"; done
endif
	$(FIRMWARE_SED) $(FIRMWARE_DIR)/systemd/caramel-embedded-reload.service \
		>"$(DESTDIR)$(SYSTEMD_UNITDIR)/caramel-embedded-reload.service"
	install -m 0644 $(FIRMWARE_DIR)/systemd/caramel-embedded-reload.path "$(DESTDIR)$(SYSTEMD_UNITDIR)/"
	install -d -m 0755 "$(DESTDIR)$(FIRMWARE_SHARE)"
	install -m 0644 $(FIRMWARE_DIR)/caramel-reload.sh "$(DESTDIR)$(FIRMWARE_SHARE)/"
	chmod 0644 "$(DESTDIR)$(SYSTEMD_UNITDIR)/caramel-embedded-reload.service"
endif
ifneq ($(filter sysv,$(FIRMWARE_INIT)),)
	install -d -m 0755 "$(DESTDIR)$(INITDIR)" "$(DESTDIR)$(FIRMWARE_SHARE)"
	$(FIRMWARE_SED) $(FIRMWARE_DIR)/sysvinit/caramel-embedded \
		>"$(DESTDIR)$(INITDIR)/$(INIT_SCRIPT_NAME)"
	chmod 0755 "$(DESTDIR)$(INITDIR)/$(INIT_SCRIPT_NAME)"
	$(FIRMWARE_SED) $(FIRMWARE_DIR)/sysvinit/crontab >"$(DESTDIR)$(FIRMWARE_SHARE)/crontab"
	chmod 0644 "$(DESTDIR)$(FIRMWARE_SHARE)/crontab"
endif

install-files: install-check
	install -d -m 0755 "$(DESTDIR)$(SYSCONFDIR)/default" "$(DESTDIR)$(FIRMWARE_SHARE)"
	$(FIRMWARE_SED) $(FIRMWARE_DIR)/caramel-ensure.sh >"$(DESTDIR)$(FIRMWARE_SHARE)/caramel-ensure.sh"
	$(FIRMWARE_SED) $(FIRMWARE_DIR)/drop-in/wait-for-certificate.conf \
		>"$(DESTDIR)$(FIRMWARE_SHARE)/wait-for-certificate.conf"
	$(FIRMWARE_SED) $(FIRMWARE_DIR)/drop-in/needs-certificate.conf \
		>"$(DESTDIR)$(FIRMWARE_SHARE)/needs-certificate.conf"
	$(FIRMWARE_SED) $(FIRMWARE_DIR)/drop-in/tpm2.conf >"$(DESTDIR)$(FIRMWARE_SHARE)/tpm2.conf"
	$(FIRMWARE_SED) $(FIRMWARE_DIR)/default/caramel-embedded \
		$(if $(CA_CERT),-e 's|^#CARAMEL_CA_CERT=.*|CARAMEL_CA_CERT=$(SYSCONFDIR)/caramel/ca.pem|') \
		$(if $(filter tpm2,$(KEY_STORE)),-e 's|^CARAMEL_KEY_STORE=.*|CARAMEL_KEY_STORE=tpm2|') \
		>"$(DESTDIR)$(SYSCONFDIR)/default/caramel-embedded"
	chmod 0644 "$(DESTDIR)$(FIRMWARE_SHARE)/caramel-ensure.sh" \
		"$(DESTDIR)$(FIRMWARE_SHARE)/wait-for-certificate.conf" \
		"$(DESTDIR)$(FIRMWARE_SHARE)/needs-certificate.conf" \
		"$(DESTDIR)$(FIRMWARE_SHARE)/tpm2.conf" \
		"$(DESTDIR)$(SYSCONFDIR)/default/caramel-embedded"
	install -D -m 0644 $(FIRMWARE_DIR)/caramel-embedded.1 "$(DESTDIR)$(MANDIR)/man1/caramel-embedded.1"
ifneq ($(CA_CERT),)
	install -D -m 0644 "$(CA_CERT)" "$(DESTDIR)$(SYSCONFDIR)/caramel/ca.pem"
endif

# --- checks -----------------------------------------------------------------------------
# shellcheck: every shell file; busybox: the init script under BusyBox's sh and applets;
# systemd: systemd-analyze verify and security on the units; strace, setpriv: the unit's
# sandbox applied to the binary; strip: what Buildroot does to it; dash: a second sh.
FIRMWARE_PACKAGES := shellcheck:shellcheck busybox:busybox systemd-analyze:systemd \
	strace:strace setpriv:util-linux strip:binutils dash:dash

firmware-deps:
	@$(call INSTALL_COMMANDS,$(FIRMWARE_PACKAGES))

# The checks run the host's one-file binary and the one-dir bundle beside it: the test
# builds of the top Makefile when it has them (TEST_BINARY and TEST_BUNDLE, frozen once and
# reused), else dist/ARCH/caramel-embedded and dist/ARCH/caramel-embedded-dir.
FIRMWARE_TEST_BINARY ?= $(or $(TEST_BINARY),dist/$(ARCH)/caramel-embedded)
FIRMWARE_TEST_BUNDLE ?= $(or $(TEST_BUNDLE),dist/$(ARCH)/caramel-embedded-dir/caramel-embedded)
FIRMWARE_TEST_COMPRESSED ?= $(or $(TEST_COMPRESSED),dist/$(ARCH)/caramel-embedded-compressed)

test-firmware: venv firmware-deps $(FIRMWARE_TEST_BINARY) $(FIRMWARE_TEST_COMPRESSED) \
		$(FIRMWARE_TEST_BUNDLE)
	CARAMEL_EMBEDDED_BINARY=$(abspath $(FIRMWARE_TEST_BINARY)) $(BIN)/python -m pytest -q tests/firmware

# The binary pass of `make test` runs tests/firmware too: their tools come with the other
# system packages.
system-deps: firmware-deps
