################################################################################
#
# caramel-embedded
#
################################################################################

# The binaries are frozen by PyInstaller outside Buildroot (`make binary ARCH=...` or
# `make bundle ARCH=...` in the caramel-embedded tree, on Debian bookworm or a root of the
# target's architecture); this package installs them with the tree's own `make install`.
CARAMEL_EMBEDDED_VERSION = 0.2.0
CARAMEL_EMBEDDED_LICENSE = MIT
CARAMEL_EMBEDDED_LICENSE_FILES = LICENSE
CARAMEL_EMBEDDED_TREE = $(or $(call qstrip,$(BR2_PACKAGE_CARAMEL_EMBEDDED_TREE)),$(BR2_EXTERNAL_CARAMEL_EMBEDDED_PATH)/../..)
CARAMEL_EMBEDDED_SITE = $(CARAMEL_EMBEDDED_TREE)
CARAMEL_EMBEDDED_SITE_METHOD = local
# What `make install` needs is the Makefile, build/, firmware-integration/ and dist/:
# leave out the tree's virtual environments, caches and emulated build roots (gigabytes).
CARAMEL_EMBEDDED_OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS = \
	--exclude /.venv --exclude /.cache --exclude /.hypothesis --exclude /.pytest_cache \
	--exclude /.mypy_cache --exclude /.ruff_cache --exclude /build/work --exclude /tests \
	--exclude /bench

CARAMEL_EMBEDDED_ARCH = $(if $(BR2_x86_64),x86_64,$(if $(BR2_aarch64),aarch64,armhf))
CARAMEL_EMBEDDED_FORM = $(if $(BR2_PACKAGE_CARAMEL_EMBEDDED_ONEDIR),onedir,onefile)
# The one-file form: stored (1, the default) or compressed (0), as `make binary STORE=...`.
CARAMEL_EMBEDDED_STORE = $(if $(BR2_PACKAGE_CARAMEL_EMBEDDED_COMPRESSED),0,1)
CARAMEL_EMBEDDED_CA_CERT = $(call qstrip,$(BR2_PACKAGE_CARAMEL_EMBEDDED_CA_CERT))

CARAMEL_EMBEDDED_MAKE_OPTS = \
	DESTDIR=$(TARGET_DIR) \
	ARCH=$(CARAMEL_EMBEDDED_ARCH) \
	FORM=$(CARAMEL_EMBEDDED_FORM) \
	STORE=$(CARAMEL_EMBEDDED_STORE) \
	CA_CERT="$(CARAMEL_EMBEDDED_CA_CERT)" \
	KEY_STORE=$(if $(BR2_PACKAGE_CARAMEL_EMBEDDED_TPM2),tpm2,file) \
	PREFIX=/usr \
	SYSCONFDIR=/etc \
	SYSTEMD_UNITDIR=/usr/lib/systemd/system \
	INITDIR=/etc/init.d \
	INIT_SCRIPT_NAME=S95caramel-embedded

# Nothing to build: the binary, the defaults file and caramel-ensure.sh.
define CARAMEL_EMBEDDED_INSTALL_TARGET_CMDS
	$(TARGET_MAKE_ENV) $(MAKE) -C $(@D) install $(CARAMEL_EMBEDDED_MAKE_OPTS) INIT=none
endef

# The units; Buildroot's presets enable the timer (WantedBy=timers.target).
define CARAMEL_EMBEDDED_INSTALL_INIT_SYSTEMD
	$(TARGET_MAKE_ENV) $(MAKE) -C $(@D) install-init $(CARAMEL_EMBEDDED_MAKE_OPTS) INIT=systemd
endef

# /etc/init.d/S95caramel-embedded; the crontab line is installed as an example in
# /usr/share/caramel-embedded/crontab (BusyBox crond reads /var/spool/cron/crontabs/root).
define CARAMEL_EMBEDDED_INSTALL_INIT_SYSV
	$(TARGET_MAKE_ENV) $(MAKE) -C $(@D) install-init $(CARAMEL_EMBEDDED_MAKE_OPTS) INIT=sysv
endef

# Buildroot strips every target binary at the end: harmless here, PyInstaller keeps its
# archive in an ELF section that strip keeps (tests/firmware checks strip changes nothing).

$(eval $(generic-package))
