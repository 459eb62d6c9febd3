SUMMARY = "One-shot Caramel certificate client for embedded devices"
DESCRIPTION = "Makes sure the device holds a private key and a certificate signed by the \
fleet's Caramel CA, in one run that never blocks, and reports the outcome in its exit \
status. Installs the prebuilt PyInstaller binary (or one-dir bundle) of the machine's \
architecture, its systemd units or init script, and /etc/default/caramel-embedded."
SECTION = "console/network"
LICENSE = "MIT"
LIC_FILES_CHKSUM = "file://LICENSE;md5=5161a2dc7fa8e6d3366f4fa0f9336297"

# --- The source: the caramel-embedded tree, binaries built ------------------------------
# The binaries are frozen by PyInstaller outside bitbake, on a Debian bookworm machine or
# root of the target's architecture (`make binary ARCH=...`, `make bundle ARCH=...` in the
# tree; the fleet's CA is embedded there with CA_CERT=...). This recipe installs them with
# the tree's own `make install`, so it needs neither Python nor PyInstaller.
# By default the tree is the one this layer lives in (five directories up); point
# CARAMEL_EMBEDDED_TREE at another checkout or an unpacked release in local.conf.
CARAMEL_EMBEDDED_LAYER_TREE := "${@os.path.normpath(os.path.join(d.getVar('THISDIR'), '../../../../..'))}"
CARAMEL_EMBEDDED_TREE ?= "${CARAMEL_EMBEDDED_LAYER_TREE}"
inherit externalsrc
EXTERNALSRC = "${CARAMEL_EMBEDDED_TREE}"
# A build directory apart from the tree: with both the same, `bitbake -c clean` would run
# the tree's `make clean`, which deletes its dist/ (the binaries) and its venv.
EXTERNALSRC_BUILD = "${WORKDIR}/build"
do_buildclean[noexec] = "1"

# onefile: one file, unpacks about 14 MB into a tmpfs at each run (26 MB on a run that
# needs cryptography: first run, new certificate; RAM for a moment; the service and the
# init script give it that tmpfs under /run);
# onedir: about 29 MB of flash, starts faster, writes nothing at run time.
CARAMEL_EMBEDDED_FORM ?= "onefile"
# The one-file form: "1" stored (`make binary`, the default), for a compressed root file
# system (squashfs, ubifs, erofs), which compresses it once, and better, and which starts
# faster; "0" compressed (`make binary STORE=0`), for one that does not compress (ext4, a
# raw flash partition).
CARAMEL_EMBEDDED_STORE ?= "1"
# A CA certificate (PEM) to install as ${sysconfdir}/caramel/ca.pem and name in
# /etc/default/caramel-embedded. Empty: the CA embedded in the binary is used.
CARAMEL_EMBEDDED_CA_CERT ?= ""
# "tpm2": the device key is made and kept inside the TPM 2.0 (CARAMEL_KEY_STORE=tpm2 in
# /etc/default/caramel-embedded, the units given /dev/tpmrm0, tpm2-openssl and libtss2 in
# the image; meta-security's meta-tpm has both); docs/tpm.md in the tree. "file": the key
# in the combined file. The kernel needs the TPM's driver (MACHINE_FEATURES tpm2).
CARAMEL_EMBEDDED_KEY_STORE ?= "file"

# The tree's name for the machine's architecture: x86_64, aarch64, or armhf (32-bit ARM,
# ARMv7 or later, hard-float: Debian's armhf). Anything else has no binary.
def caramel_embedded_arch(d):
    arch = d.getVar('TARGET_ARCH')
    features = (d.getVar('TUNE_FEATURES') or '').split()
    if arch in ('x86_64', 'aarch64'):
        return arch
    if arch == 'arm' and 'callconvention-hard' in features and \
            any(f.startswith(('armv7', 'armv8')) for f in features):
        return 'armhf'
    return ''

CARAMEL_EMBEDDED_ARCH = "${@caramel_embedded_arch(d)}"
CARAMEL_EMBEDDED_DIST = "${CARAMEL_EMBEDDED_TREE}/dist/${CARAMEL_EMBEDDED_ARCH}"
CARAMEL_EMBEDDED_OUTPUT = "${CARAMEL_EMBEDDED_DIST}/${@'caramel-embedded-dir' if d.getVar('CARAMEL_EMBEDDED_FORM') == 'onedir' else 'caramel-embedded' if d.getVar('CARAMEL_EMBEDDED_STORE') != '0' else 'caramel-embedded-compressed'}"
# The lowest glibc each architecture's binary needs (build/elf_report.py measures it).
CARAMEL_EMBEDDED_GLIBC_FLOOR = "${@{'x86_64': '2.35', 'aarch64': '2.36', 'armhf': '2.36'}.get(d.getVar('CARAMEL_EMBEDDED_ARCH'), '')}"

# PyInstaller's binaries are built against glibc (manylinux wheels): no musl.
COMPATIBLE_HOST = "(x86_64|aarch64|arm).*-linux.*"
COMPATIBLE_HOST:libc-musl = "null"

python () {
    arch = d.getVar('CARAMEL_EMBEDDED_ARCH')
    if not arch:
        raise bb.parse.SkipRecipe("no caramel-embedded binary for %s (tune %s): x86_64, "
                                  "aarch64 and hard-float ARMv7+ only"
                                  % (d.getVar('TARGET_ARCH'), d.getVar('TUNE_FEATURES')))
    glibc = (d.getVar('GLIBCVERSION') or '').rstrip('%')
    floor = d.getVar('CARAMEL_EMBEDDED_GLIBC_FLOOR')
    if glibc and bb.utils.vercmp_string(glibc, floor) < 0:
        raise bb.parse.SkipRecipe("caramel-embedded for %s needs glibc %s or later, this "
                                  "build has %s" % (arch, floor, glibc))
}

# --- Install: the tree's own `make install` ---------------------------------------------
CARAMEL_EMBEDDED_INIT = "${@' '.join(filter(None, [bb.utils.contains('DISTRO_FEATURES', 'systemd', 'systemd', '', d), bb.utils.contains('DISTRO_FEATURES', 'sysvinit', 'sysv', '', d)])) or 'none'}"

# Nothing to configure or build: the binaries are built already.
do_configure[noexec] = "1"
do_compile[noexec] = "1"
# The binaries are ignored by git (dist/), so externalsrc's checksum of the tree does not
# see a new build: make do_install depend on their bytes.
do_install[file-checksums] += "${CARAMEL_EMBEDDED_OUTPUT}:${@os.path.exists(d.getVar('CARAMEL_EMBEDDED_OUTPUT'))}"

do_install() {
    oe_runmake -C ${S} install \
        DESTDIR=${D} \
        ARCH=${CARAMEL_EMBEDDED_ARCH} \
        FORM=${CARAMEL_EMBEDDED_FORM} \
        STORE=${CARAMEL_EMBEDDED_STORE} \
        INIT="${CARAMEL_EMBEDDED_INIT}" \
        CA_CERT="${CARAMEL_EMBEDDED_CA_CERT}" \
        KEY_STORE=${CARAMEL_EMBEDDED_KEY_STORE} \
        PREFIX=${prefix} \
        BINDIR=${bindir} \
        LIBDIR=${libdir} \
        DATADIR=${datadir} \
        SYSCONFDIR=${sysconfdir} \
        SYSTEMD_UNITDIR=${systemd_system_unitdir} \
        INITDIR=${sysconfdir}/init.d \
        INIT_SCRIPT_NAME=${INITSCRIPT_NAME}
}

# --- Start: the timer under systemd, the init script under sysvinit ---------------------
inherit systemd update-rc.d

# The timer starts the service; the service has no [Install] of its own. The reload path
# unit reloads nothing until RELOAD_UNITS= is set in /etc/default/caramel-embedded.
SYSTEMD_SERVICE:${PN} = "caramel-embedded.timer caramel-embedded-reload.path"
SYSTEMD_AUTO_ENABLE:${PN} = "enable"

INITSCRIPT_NAME = "caramel-embedded"
# Late at boot, in the background (the script returns at once); nothing to stop.
INITSCRIPT_PARAMS = "start 95 2 3 4 5 ."

# --- Packaging ------------------------------------------------------------------------
FILES:${PN} += "\
    ${systemd_system_unitdir}/caramel-embedded.service \
    ${systemd_system_unitdir}/caramel-embedded-wait.service \
    ${systemd_system_unitdir}/caramel-embedded-reload.service \
    ${systemd_system_unitdir}/caramel-embedded.service.d \
    ${systemd_system_unitdir}/caramel-embedded-wait.service.d \
    ${libdir}/caramel-embedded \
    ${datadir}/caramel-embedded \
"
CONFFILES:${PN} = "${sysconfdir}/default/caramel-embedded"
# The init script, caramel-ensure.sh and the crontab's action use od, tr, grep, sleep.
RDEPENDS:${PN} += "${VIRTUAL-RUNTIME_base-utils}"
# tpm2 mode: the OpenSSL provider the client reaches the TPM through, and the TCTI for the
# kernel's resource manager (the provider pulls in the rest of libtss2).
RDEPENDS:${PN} += "${@'tpm2-openssl libtss2-tcti-device' if d.getVar('CARAMEL_EMBEDDED_KEY_STORE') == 'tpm2' else ''}"

# The installed bytes are the ones built and tested (reproducible, recorded in
# dist/ARCH/*.buildinfo): no stripping and no debug split. PyInstaller strips everything
# at freeze time already; stripping again would be harmless (its archive is an ELF
# section, `pydata`, that strip keeps), but the image would no longer hold tested bytes.
INHIBIT_PACKAGE_STRIP = "1"
INHIBIT_PACKAGE_DEBUG_SPLIT = "1"
INHIBIT_SYSROOT_STRIP = "1"
# A one-dir bundle carries its own copies of libpython, libssl, libcrypto, libz and
# libgcc_s: keep them out of the shared library providers, so that no other package is
# made to depend on caramel-embedded for libssl.so.3.
EXCLUDE_FROM_SHLIBS = "1"

# QA checks a PyInstaller binary cannot pass, each skipped for its reason:
#   already-stripped  PyInstaller strips the launcher and every library it packs
#                     (strip=True in build/caramel-embedded.spec); only checked when
#                     stripping is turned back on above.
#   ldflags           prebuilt: not linked by this build, so not with its LDFLAGS.
INSANE_SKIP:${PN} += "already-stripped ldflags"
#   32bit-time        armhf binaries are built on Debian bookworm's armhf, whose glibc
#                     ABI has a 32-bit time_t (the 64-bit one came with trixie).
INSANE_SKIP:${PN}:append:arm = " 32bit-time"
