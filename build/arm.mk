# ARM: the one-file binary and the bundle for aarch64 and armhf, built on this x86_64 machine
# inside an emulated Debian root of each architecture, and tested there under qemu-user.
# Included by the Makefile; uses its VENV/BIN, FREEZE_INPUTS, TEST_DIST_ROOT, TEST_BINARY and
# BUILD_PYTHON.
#
#   make test-arm                      build both architectures and run the ARM pass
#   make test-arm-aarch64 | test-arm-armhf    one architecture
#   make arm-root ARCH=aarch64|armhf   make (or reuse) the build root   .cache/roots/ARCH/rootfs
#   make arm-glibc-root ARCH=...       the root holding nothing but glibc  .cache/roots/ARCH/glibc-only
#   make binary ARCH=... / make bundle ARCH=...   dist/ARCH/, through build/freeze-in-root.sh
#
# The ARM pass freezes each architecture without a CA into .cache/test-dist/ARCH (both
# one-file forms and the bundle; rebuilt only when something that goes into it changed),
# then runs, against the stored one-file form (the default), with every invocation under
# qemu-user and nothing but the target's glibc to load (QEMU_LD_PREFIX = the glibc-only
# root), the tests ARM_SUITE selects by their markers: the process-level tests marked `arm`
# and tests/arm (the binary and the bundle in the glibc-only root under chroot, the glibc
# floor, reproducible bytes).

ARM_ARCHES  := aarch64 armhf
ARM_SCRIPTS := build/arm-lib.sh build/rootfs.sh build/glibc-root.sh build/freeze-in-root.sh

# The ARM pass runs the tests marked `arm` (pytest.mark.arm: the combined file and a failed
# run that changes nothing, the lock, the signals, the real-server lifecycle), on armhf
# those marked `arm32` too (exit statuses, every server answer, local input, options), and
# those marked `arm_only`, all of tests/arm (its conftest
# marks them: the binary and the bundle in the glibc-only root under chroot, the glibc
# floor, reproducible bytes). `not slow` leaves out the 32-process lock race, which
# measures the machine more than the binary under emulation; `not native_only` what
# qemu-user itself cannot pass on (a real-time signal).
# `arm32` adds, on the 32-bit target only, the process-level tests of every server answer,
# the local input and the options: the same bytecode answers them on every architecture,
# and armhf is the one whose data model (32-bit time_t, sizes, alignment) differs from the
# host's; aarch64 is LP64 as x86_64 is, and its pass keeps the lifecycle against the real
# server, the signals, the lock and the failed runs. That halves aarch64's emulated work.
ARM_SUITE = -m "(arm or arm_only$(if $(filter armhf,$*), or arm32)) and not slow and not native_only"
ARM_PYTEST_FLAGS = -q -p no:cacheprovider \
	--basetemp=$(or $(TMPDIR),/tmp)/caramel-embedded-test-arm-$*

.PHONY: test-arm $(addprefix test-arm-,$(ARM_ARCHES)) arm-root arm-glibc-root

# The two architectures build and test side by side (each emulated process keeps one core
# busy); each one's output is shown in one piece when it ends.
test-arm:
	$(MAKE) --no-print-directory -j2 --output-sync=target $(addprefix test-arm-,$(ARM_ARCHES))

arm-root:
	build/rootfs.sh $(ARCH)

arm-glibc-root:
	build/glibc-root.sh $(ARCH)

$(TEST_DIST_ROOT)/%/caramel-embedded: $(FREEZE_INPUTS) $(ARM_SCRIPTS)
	build/freeze-in-root.sh --arch $* --form onefile --store yes --dist $(TEST_DIST_ROOT)/$*

# One after the other within an architecture (order only): the freezes share a root and
# its venv and take turns (a lock), so `make -j2` builds the two architectures side by side.
# The compressed form: tests/arm checks its build (the same bytes twice, its archive).
$(TEST_DIST_ROOT)/%/caramel-embedded-compressed: $(FREEZE_INPUTS) $(ARM_SCRIPTS) \
		| $(TEST_DIST_ROOT)/%/caramel-embedded
	build/freeze-in-root.sh --arch $* --form onefile --store no --dist $(TEST_DIST_ROOT)/$*

$(TEST_DIST_ROOT)/%/caramel-embedded-dir/caramel-embedded: $(FREEZE_INPUTS) $(ARM_SCRIPTS) \
		| $(TEST_DIST_ROOT)/%/caramel-embedded-compressed
	build/freeze-in-root.sh --arch $* --form onedir --dist $(TEST_DIST_ROOT)/$*

# The host's build venv (made by the host freeze) gives build/elf_report.py PyInstaller's
# archive reader, to look inside the ARM one-file binaries.
$(addprefix test-arm-,$(ARM_ARCHES)): test-arm-%: venv system-deps $(TEST_BINARY) $(TEST_DIST_ROOT)/%/caramel-embedded \
		$(TEST_DIST_ROOT)/%/caramel-embedded-compressed \
		$(TEST_DIST_ROOT)/%/caramel-embedded-dir/caramel-embedded
	@glibc_root=$$(build/glibc-root.sh $*) && \
	echo "test-arm: $* under qemu-user, QEMU_LD_PREFIX=$$glibc_root" && \
	CARAMEL_ARM_ARCH=$* \
	CARAMEL_ARM_DIST=$(abspath $(TEST_DIST_ROOT)/$*) \
	CARAMEL_ARM_GLIBC_ROOT=$$glibc_root \
	CARAMEL_BUILD_PYTHON=$(abspath $(BUILD_PYTHON)) \
	CARAMEL_EMBEDDED_CMD="env QEMU_LD_PREFIX=$$glibc_root $(abspath $(TEST_DIST_ROOT)/$*/caramel-embedded)" \
		$(BIN)/python -m pytest $(ARM_PYTEST_FLAGS) $(ARM_SUITE)
