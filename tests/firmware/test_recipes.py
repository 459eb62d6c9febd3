"""The Yocto recipe and the Buildroot package: parse checks, and their install steps run."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.firmware import recipe_check
from tests.firmware.conftest import FIRMWARE, REPO, make_env
from tests.frozen.conftest import elf_report

README = REPO / "docs" / "firmware-integration.md"
GLIBC_FLOORS = {"x86_64": "2.35", "aarch64": "2.36", "armhf": "2.36"}


def test_recipe_and_package_pass_the_checks() -> None:
    assert recipe_check.problems() == []


@pytest.fixture
def copy_of_the_checked_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository holding only what the checks read, for the checker's paths to point at."""
    root = tmp_path / "repo"
    shutil.copytree(FIRMWARE, root / "firmware-integration")
    (root / "caramel_embedded").mkdir()
    shutil.copy(REPO / "caramel_embedded" / "version.py", root / "caramel_embedded")
    shutil.copy(REPO / "pyproject.toml", root)
    shutil.copy(REPO / "LICENSE", root)
    firmware = root / "firmware-integration"
    monkeypatch.setattr(recipe_check, "REPO", root)
    monkeypatch.setattr(recipe_check, "FIRMWARE", firmware)
    monkeypatch.setattr(recipe_check, "LAYER", firmware / recipe_check.LAYER.relative_to(FIRMWARE))
    monkeypatch.setattr(
        recipe_check, "RECIPE_DIR", firmware / recipe_check.RECIPE_DIR.relative_to(FIRMWARE)
    )
    monkeypatch.setattr(recipe_check, "BUILDROOT", firmware / "buildroot")
    monkeypatch.setattr(
        recipe_check,
        "BUILDROOT_PACKAGE",
        firmware / recipe_check.BUILDROOT_PACKAGE.relative_to(FIRMWARE),
    )
    assert recipe_check.problems() == []
    return root


RECIPE = str(recipe_check.recipe_path().relative_to(FIRMWARE))  # its name has the version
LAYER_CONF = "yocto/meta-caramel-embedded/conf/layer.conf"
PACKAGE_MK = "buildroot/package/caramel-embedded/caramel-embedded.mk"
PACKAGE_CONFIG = "buildroot/package/caramel-embedded/Config.in"
MISTAKES = {
    "undefined variable": (
        RECIPE,
        "SYSCONFDIR=${sysconfdir}",
        "SYSCONFDIR=${sysconfigdir}",
        "sysconfigdir",
    ),
    "misspelt variable": (
        RECIPE,
        'INSANE_SKIP:${PN} += "',
        'INSANE_SKIPP:${PN} += "',
        "INSANE_SKIPP",
    ),
    "unexplained QA skip": (RECIPE, "#   ldflags ", "#   (ldflags) ", "INSANE_SKIP ldflags"),
    "license checksum": (RECIPE, "md5=5161a2dc", "md5=5161a2dd", "md5 is"),
    "missing file": (RECIPE, "file://LICENSE", "file://LICENCE", "does not exist"),
    "unknown getVar": (
        RECIPE,
        "d.getVar('TUNE_FEATURES')",
        "d.getVar('TUNE_FEATURE')",
        "TUNE_FEATURE",
    ),
    "unit not shipped": (
        RECIPE,
        '"caramel-embedded.timer ',
        '"caramel-embedded.timers ',
        "SYSTEMD_SERVICE",
    ),
    "unknown class": (
        RECIPE,
        "inherit systemd update-rc.d",
        "inherit systemd update-rcd",
        "update-rcd",
    ),
    "layer variable": (
        LAYER_CONF,
        "${LAYERDIR}/recipes-*/*/*.bb ",
        "${LAYERDIRS}/recipes-*/*/*.bb ",
        "LAYERDIRS",
    ),
    "no glibc dependency": (
        PACKAGE_CONFIG,
        "\tdepends on BR2_TOOLCHAIN_USES_GLIBC\n\thelp",
        "\thelp",
        "GLIBC",
    ),
    "unknown symbol": (PACKAGE_CONFIG, "BR2_ARM_EABIHF", "BR2_ARM_EABI_HF", "BR2_ARM_EABI_HF"),
    "misspelt package variable": (
        PACKAGE_MK,
        "CARAMEL_EMBEDDED_SITE_METHOD",
        "CARAMEL_EMBEDDED_SITEMETHOD",
        "SITEMETHOD",
    ),
    "symbol not in Config.in": (
        PACKAGE_MK,
        "BR2_PACKAGE_CARAMEL_EMBEDDED_ONEDIR)",
        "BR2_PACKAGE_CARAMEL_EMBEDDED_ONE_DIR)",
        "ONE_DIR",
    ),
}


@pytest.mark.parametrize("mistake", MISTAKES, ids=list(MISTAKES))
def test_the_checks_catch_mistakes(copy_of_the_checked_files: Path, mistake: str) -> None:
    relative, good, bad, message = MISTAKES[mistake]
    path = copy_of_the_checked_files / "firmware-integration" / relative
    text = path.read_text()
    assert good in text, good
    path.write_text(text.replace(good, bad, 1))
    found = recipe_check.problems()
    assert any(message in problem for problem in found), found


@pytest.mark.parametrize(
    ("arch", "settings", "skipped"),
    [
        ("x86_64", {}, None),
        ("aarch64", {}, None),
        ("armhf", {}, None),
        ("armel", {}, "no caramel-embedded binary"),
        ("aarch64", {"GLIBCVERSION": "2.35%"}, "needs glibc 2.36 or later"),
        ("x86_64", {"GLIBCVERSION": "2.35%"}, None),
        ("x86_64", {"GLIBCVERSION": "2.34%"}, "needs glibc 2.35 or later"),
    ],
)
def test_yocto_machines(arch: str, settings: dict[str, str], skipped: str | None) -> None:
    reason = recipe_check.yocto_skips(arch, **settings)
    if skipped is None:
        assert reason is None
    else:
        assert reason is not None
        assert skipped in reason


# The one-file names in dist/ARCH by form (`make binary STORE=1|0`).
ONEFILE_NAMES = {"1": "caramel-embedded", "0": "caramel-embedded-compressed"}
# What the other form's name holds in a tree: installing it instead makes --version fail.
DECOY = "#!/bin/sh\necho 'the other one-file form was installed' >&2\nexit 3\n"


def tree_with(tmp_path: Path, binary: Path, arch: str, store: str = "1") -> Path:
    """A caramel-embedded tree (an unpacked release) whose dist/ARCH holds the binary.

    The binary sits under the name of the one-file form that STORE picks, a decoy under the
    other form's name, so a recipe that installs the wrong form fails the test.
    """
    tree = tmp_path / "tree"
    tree.mkdir()
    for name in ("Makefile", "build", "firmware-integration"):
        (tree / name).symlink_to(REPO / name)
    dist = tree / "dist" / arch
    dist.mkdir(parents=True)
    for form, name in ONEFILE_NAMES.items():
        if form == store:
            (dist / name).symlink_to(binary)
        else:
            (dist / name).write_text(DECOY)
            (dist / name).chmod(0o755)
    return tree


def assert_installed_binary_is(installed_binary: Path, binary: Path) -> None:
    assert installed_binary.read_bytes() == binary.read_bytes()
    assert subprocess.run([installed_binary, "--version"], check=False).returncode == 0


def installed(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir()}


@pytest.mark.parametrize("store", [None, "1", "0"], ids=["default", "stored", "compressed"])
def test_yocto_do_install(frozen_binary: Path, tmp_path: Path, store: str | None) -> None:
    tree = tree_with(tmp_path, frozen_binary, "x86_64", store or "1")
    image = tmp_path / "image"
    settings = {} if store is None else {"CARAMEL_EMBEDDED_STORE": store}
    script = recipe_check.yocto_install_script(image, "x86_64", tree, **settings)
    result = subprocess.run(
        ["sh", "-c", script], capture_output=True, text=True, check=False, env=make_env()
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert installed(image) == {
        "usr/bin/caramel-embedded",
        "usr/lib/systemd/system/caramel-embedded.service",
        "usr/lib/systemd/system/caramel-embedded.timer",
        "usr/lib/systemd/system/caramel-embedded-wait.service",
        "usr/lib/systemd/system/caramel-embedded-reload.path",
        "usr/lib/systemd/system/caramel-embedded-reload.service",
        "usr/share/caramel-embedded/caramel-reload.sh",
        "etc/init.d/caramel-embedded",
        "etc/default/caramel-embedded",
        "usr/share/caramel-embedded/caramel-ensure.sh",
        "usr/share/caramel-embedded/crontab",
        "usr/share/caramel-embedded/wait-for-certificate.conf",
        "usr/share/caramel-embedded/needs-certificate.conf",
        "usr/share/caramel-embedded/tpm2.conf",
        "usr/share/man/man1/caramel-embedded.1",  # in ${PN}-doc, as Yocto packages ${mandir}
    }
    assert_installed_binary_is(image / "usr/bin/caramel-embedded", frozen_binary)


STUB = """\
# The Buildroot variables and functions caramel-embedded.mk uses, and the install step.
BR2_EXTERNAL_CARAMEL_EMBEDDED_PATH := {external}
qstrip = $(strip $(subst ",,$(1)))
generic-package =
TARGET_DIR := {target}
TARGET_MAKE_ENV := PATH="$(PATH)"
INIT_SYSTEMD ?=
INIT_SYSV ?=
{symbols}
include {package_mk}

.PHONY: {tree}/.stamp_target_installed
{tree}/.stamp_target_installed:
\t$(CARAMEL_EMBEDDED_INSTALL_TARGET_CMDS)
\t$(if $(INIT_SYSTEMD),$(CARAMEL_EMBEDDED_INSTALL_INIT_SYSTEMD))
\t$(if $(INIT_SYSV),$(CARAMEL_EMBEDDED_INSTALL_INIT_SYSV))
"""


def buildroot_install(
    tmp_path: Path, tree: Path, config: dict[str, str], init: str
) -> subprocess.CompletedProcess[str]:
    """Run the package's install commands through GNU make, as Buildroot runs them."""
    target = tmp_path / "target"
    config_text = (recipe_check.BUILDROOT_PACKAGE / "Config.in").read_text()
    defined, used = recipe_check.kconfig_symbols(config_text)
    symbols = dict.fromkeys(defined | used | recipe_check.BUILDROOT_SYMBOLS, "")
    symbols.update(config)
    stub = tmp_path / "buildroot-stub.mk"
    stub.write_text(
        STUB.format(
            external=recipe_check.BUILDROOT,
            target=target,
            symbols="\n".join(f"{k} := {v}" for k, v in sorted(symbols.items())),
            package_mk=recipe_check.BUILDROOT_PACKAGE / "caramel-embedded.mk",
            tree=tree,
        )
    )
    return subprocess.run(
        [
            "make",
            "--no-print-directory",
            "--warn-undefined-variables",
            "-f",
            str(stub),
            f"{tree}/.stamp_target_installed",
            f"INIT_{init.upper()}=y",
        ],
        capture_output=True,
        text=True,
        check=False,
        env=make_env(),
        timeout=120,
    )


@pytest.mark.parametrize(("init", "store"), [("systemd", "1"), ("sysv", "1"), ("systemd", "0")])
def test_buildroot_install(frozen_binary: Path, tmp_path: Path, init: str, store: str) -> None:
    tree = tree_with(tmp_path, frozen_binary, "x86_64", store)
    result = buildroot_install(
        tmp_path,
        tree,
        {
            "BR2_x86_64": "y",
            "BR2_TOOLCHAIN_USES_GLIBC": "y",
            "BR2_PACKAGE_CARAMEL_EMBEDDED": "y",
            "BR2_PACKAGE_CARAMEL_EMBEDDED_ONEFILE": "y",
            "BR2_PACKAGE_CARAMEL_EMBEDDED_COMPRESSED": "" if store == "1" else "y",
            "BR2_PACKAGE_CARAMEL_EMBEDDED_TREE": f'"{tree}"',
            "BR2_PACKAGE_CARAMEL_EMBEDDED_CA_CERT": '""',
        },
        init,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    package_warnings = [
        line
        for line in result.stderr.splitlines()
        if "warning: undefined variable" in line
        and ".mk:" in line
        and ("caramel-embedded.mk" in line or "buildroot-stub.mk" in line)
    ]
    assert package_warnings == []
    assert_installed_binary_is(tmp_path / "target/usr/bin/caramel-embedded", frozen_binary)
    files = installed(tmp_path / "target")
    common = {
        "usr/bin/caramel-embedded",
        "etc/default/caramel-embedded",
        "usr/share/caramel-embedded/caramel-ensure.sh",
        "usr/share/caramel-embedded/wait-for-certificate.conf",
        "usr/share/caramel-embedded/needs-certificate.conf",
        "usr/share/caramel-embedded/tpm2.conf",
        "usr/share/man/man1/caramel-embedded.1",
    }
    if init == "systemd":
        assert files == common | {
            "usr/lib/systemd/system/caramel-embedded.service",
            "usr/lib/systemd/system/caramel-embedded.timer",
            "usr/lib/systemd/system/caramel-embedded-wait.service",
            "usr/lib/systemd/system/caramel-embedded-reload.path",
            "usr/lib/systemd/system/caramel-embedded-reload.service",
            "usr/share/caramel-embedded/caramel-reload.sh",
        }
    else:
        assert files == common | {
            "etc/init.d/S95caramel-embedded",
            "usr/share/caramel-embedded/crontab",
        }
        crontab = (tmp_path / "target/usr/share/caramel-embedded/crontab").read_text()
        assert "/etc/init.d/S95caramel-embedded cron" in crontab


def test_buildroot_keeps_what_install_needs_in_its_copy_of_the_tree() -> None:
    """The rsync exclusions of SITE_METHOD=local leave what `make install` reads."""
    makefile = (recipe_check.BUILDROOT_PACKAGE / "caramel-embedded.mk").read_text()
    excluded = re.findall(r"--exclude\s+/(\S+)", makefile)
    needed = ["Makefile", "build/freeze.sh", "firmware-integration/install.mk", "dist"]
    for path in needed:
        assert not any(path == e or path.startswith(e + "/") for e in excluded), path
    for heavy in (".venv", ".cache"):
        assert heavy in excluded


def test_glibc_floors_agree() -> None:
    """The floors in the recipe, the Buildroot help and the firmware docs are the same."""
    recipe = recipe_check.recipe_path().read_text()
    for arch, floor in GLIBC_FLOORS.items():
        assert f"'{arch}': '{floor}'" in recipe
        assert re.search(
            rf"\|\s*{arch}\s*\|\s*(?:glibc )?{re.escape(floor)}\s*\|", README.read_text()
        ), arch
    config = (recipe_check.BUILDROOT_PACKAGE / "Config.in").read_text()
    assert "glibc 2.35 or later (x86_64), 2.36 or later (aarch64,\n\t  armhf)" in config


def test_glibc_floor_is_the_binarys(frozen_binary: Path) -> None:
    """The floor stated for this machine's architecture is the one measured on its binary.

    The ARM floors are checked against the ARM binaries in the ARM pass (tests/arm).
    """
    python = REPO / ".cache" / "build-venv-x86_64" / "bin" / "python"
    assert python.exists(), "build/elf_report.py needs the build venv (make binary makes it)"
    report = elf_report(python, frozen_binary)
    assert str(report["glibc_floor"]).removeprefix("GLIBC_") == GLIBC_FLOORS["x86_64"]
