"""Parse checks of the Yocto recipe and the Buildroot package, without bitbake or Buildroot.

Yocto: a small reader of the BitBake syntax the recipe uses (assignments with operators,
overrides and flags, `inherit`, `def` and anonymous python, shell tasks) that lists every
variable the recipe and its layer.conf refer to and set, and expands variables the way
BitBake does (`${VAR}`, `${@python}`, `d.getVar`), so that the recipe's own do_install
can be run. Buildroot: the Config.in symbols, and the package .mk read by GNU make itself
(with --warn-undefined-variables) under a stub of the few Buildroot variables it uses.

The variables a recipe may use without defining them are BitBake's and OE-Core's; those
used here are listed in YOCTO_STANDARD, and likewise BUILDROOT_STANDARD and
BUILDROOT_SYMBOLS: a name outside these lists and outside the file is an error, which is
how a typo (INSANE_SKIPP, ${sysconfigdir}) is caught.

    python -m tests.firmware.recipe_check     prints the problems, exits 1 if any
"""

from __future__ import annotations

import hashlib
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
FIRMWARE = REPO / "firmware-integration"
LAYER = FIRMWARE / "yocto" / "meta-caramel-embedded"
RECIPE_DIR = LAYER / "recipes-security" / "caramel-embedded"
BUILDROOT = FIRMWARE / "buildroot"
BUILDROOT_PACKAGE = BUILDROOT / "package" / "caramel-embedded"

# BitBake and OE-Core variables (and tasks) the recipe and layer.conf may use or set
# without defining them: set by bitbake.conf, the classes inherited, or the build.
YOCTO_STANDARD = frozenset(
    {
        # bitbake.conf: the recipe, its directories and the target
        "PN",
        "PV",
        "BPN",
        "FILE",
        "THISDIR",
        "WORKDIR",
        "S",
        "B",
        "D",
        "TOPDIR",
        "TARGET_ARCH",
        "TUNE_FEATURES",
        "DISTRO_FEATURES",
        "GLIBCVERSION",
        "prefix",
        "exec_prefix",
        "bindir",
        "sbindir",
        "libdir",
        "libexecdir",
        "datadir",
        "sysconfdir",
        "localstatedir",
        "systemd_system_unitdir",
        "systemd_unitdir",
        # metadata a recipe sets
        "SUMMARY",
        "DESCRIPTION",
        "HOMEPAGE",
        "SECTION",
        "LICENSE",
        "LIC_FILES_CHKSUM",
        "SRC_URI",
        "COMPATIBLE_HOST",
        "FILES",
        "CONFFILES",
        "RDEPENDS",
        "DEPENDS",
        "INSANE_SKIP",
        "INHIBIT_PACKAGE_STRIP",
        "INHIBIT_PACKAGE_DEBUG_SPLIT",
        "INHIBIT_SYSROOT_STRIP",
        "EXCLUDE_FROM_SHLIBS",
        "VIRTUAL-RUNTIME_base-utils",
        # externalsrc.bbclass, systemd.bbclass, update-rc.d.bbclass
        "EXTERNALSRC",
        "EXTERNALSRC_BUILD",
        "SYSTEMD_SERVICE",
        "SYSTEMD_AUTO_ENABLE",
        "INITSCRIPT_NAME",
        "INITSCRIPT_PARAMS",
        # tasks (their flags are set like variables)
        "do_configure",
        "do_compile",
        "do_install",
        "do_buildclean",
        # layer.conf
        "LAYERDIR",
        "BBPATH",
        "BBFILES",
        "BBFILE_COLLECTIONS",
        "BBFILE_PATTERN",
        "BBFILE_PRIORITY",
        "LAYERDEPENDS",
        "LAYERSERIES_COMPAT",
    }
)
YOCTO_CLASSES = frozenset({"externalsrc", "systemd", "update-rc.d"})
YOCTO_TASK_FLAGS = frozenset({"noexec", "file-checksums"})
# Shell functions BitBake gives a task.
YOCTO_SHELL_FUNCTIONS = frozenset({"oe_runmake"})
# The recipe's own variables (outside BitBake's and OE-Core's names).
LOCAL_PREFIX = "CARAMEL_EMBEDDED_"

# Buildroot's own make variables and functions that the package .mk uses.
BUILDROOT_STANDARD = frozenset(
    {"TARGET_DIR", "TARGET_MAKE_ENV", "MAKE", "@D", "qstrip", "generic-package"}
)
# Buildroot's Kconfig symbols that the Config.in and .mk use (arch/Config.in*,
# toolchain/Config.in, package/tpm2-openssl/Config.in and what it depends on), and the
# BR2_EXTERNAL path variable named by external.desc.
BUILDROOT_SYMBOLS = frozenset(
    {
        "BR2_x86_64",
        "BR2_aarch64",
        "BR2_arm",
        "BR2_ARM_EABIHF",
        "BR2_ARM_CPU_ARMV7A",
        "BR2_ARM_CPU_ARMV8A",
        "BR2_TOOLCHAIN_USES_GLIBC",
        "BR2_TOOLCHAIN_HAS_THREADS",
        "BR2_STATIC_LIBS",
        "BR2_PACKAGE_TPM2_OPENSSL",
    }
)
# The package variables Buildroot's generic-package reads (a typo there is silently
# ignored by Buildroot, so they are listed).
BUILDROOT_PACKAGE_VARIABLES = frozenset(
    {
        "VERSION",
        "LICENSE",
        "LICENSE_FILES",
        "SITE",
        "SITE_METHOD",
        "SOURCE",
        "OVERRIDE_SRCDIR_RSYNC_EXCLUSIONS",
        "DEPENDENCIES",
        "INSTALL_TARGET_CMDS",
        "INSTALL_INIT_SYSTEMD",
        "INSTALL_INIT_SYSV",
        "BUILD_CMDS",
    }
)


def version() -> str:
    text = (REPO / "caramel_embedded" / "version.py").read_text()
    found = re.search(r'^__version__ = "([^"]+)"', text, re.M)
    assert found is not None
    return found.group(1)


def recipe_path() -> Path:
    [recipe] = sorted(RECIPE_DIR.glob("caramel-embedded_*.bb"))
    return recipe


# --- BitBake ------------------------------------------------------------------------------
ASSIGNMENT = re.compile(
    r"^(?P<name>[A-Za-z_][A-Za-z0-9_\-]*)"
    r"(?P<overrides>(?::[A-Za-z0-9_\-${}]+)*)"
    r"(?:\[(?P<flag>[a-z\-]+)\])?"
    r"\s*(?P<op>\?\?=|\?=|:=|\+=|=\+|\.=|=\.|=)\s*"
    r'"(?P<value>.*)"$',
    re.S,
)
REFERENCE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_\-]*)\}")
GETVAR = re.compile(r"""d\.getVar\(\s*['"]([A-Za-z_][A-Za-z0-9_\-]*)['"]""")
CONTAINS = re.compile(r"""bb\.utils\.(?:contains|filter)\(\s*['"]([A-Za-z_][A-Za-z0-9_\-]*)['"]""")


@dataclass
class Assignment:
    name: str
    overrides: list[str]
    flag: str | None
    op: str
    value: str
    line: int


@dataclass
class BitBakeFile:
    path: Path
    assignments: list[Assignment] = field(default_factory=list)
    inherits: list[str] = field(default_factory=list)
    python_functions: dict[str, str] = field(default_factory=dict)  # name -> source
    anonymous_python: list[str] = field(default_factory=list)
    shell_functions: dict[str, str] = field(default_factory=dict)
    comments: list[str] = field(default_factory=list)

    def names_set(self) -> set[str]:
        return {a.name for a in self.assignments}

    def references(self) -> set[str]:
        """Every variable referred to: ${VAR}, d.getVar('VAR'), bb.utils.contains('VAR')."""
        texts = [a.value for a in self.assignments]
        texts += [o for a in self.assignments for o in a.overrides]
        texts += list(self.python_functions.values()) + self.anonymous_python
        texts += list(self.shell_functions.values())
        found: set[str] = set()
        for text in texts:
            found |= set(REFERENCE.findall(text))
            found |= set(GETVAR.findall(text))
            found |= set(CONTAINS.findall(text))
        return found


def parse_bitbake(path: Path) -> BitBakeFile:
    parsed = BitBakeFile(path)
    lines = path.read_text().splitlines()
    index = 0
    while index < len(lines):
        number, line = index + 1, lines[index]
        index += 1
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("#"):
            parsed.comments.append(stripped)
            continue
        if stripped.startswith("inherit "):
            parsed.inherits += stripped.split()[1:]
            continue
        if stripped.startswith("def "):
            name = stripped[4:].split("(", 1)[0]
            body = [line]
            while index < len(lines) and (
                lines[index].startswith((" ", "\t")) or not lines[index].strip()
            ):
                body.append(lines[index])
                index += 1
            parsed.python_functions[name] = "\n".join(body)
            continue
        block = re.match(r"^(python\s+)?([A-Za-z_][A-Za-z0-9_:]*)?\s*\(\)\s*\{$", stripped)
        if block:
            body = []
            while index < len(lines) and lines[index].rstrip() != "}":
                body.append(lines[index])
                index += 1
            index += 1  # the closing brace
            if block.group(1):
                parsed.anonymous_python.append("\n".join(body))
            else:
                parsed.shell_functions[block.group(2)] = "\n".join(body)
            continue
        # An assignment, its continuation lines (a trailing backslash) joined.
        while stripped.endswith("\\") and index < len(lines):
            stripped = stripped[:-1] + " " + lines[index].strip()
            index += 1
        assignment = ASSIGNMENT.match(stripped)
        if assignment is None:
            raise ValueError(f"{path}:{number}: not understood: {stripped[:80]}")
        parsed.assignments.append(
            Assignment(
                assignment["name"],
                [o for o in assignment["overrides"].split(":") if o],
                assignment["flag"],
                assignment["op"],
                assignment["value"],
                number,
            )
        )
    return parsed


class Datastore:
    """Enough of BitBake's datastore to expand the recipe's variables (no overrides)."""

    def __init__(self, values: dict[str, str], functions: dict[str, Callable[..., str]]) -> None:
        self.values = values
        self.functions = functions

    def getVar(self, name: str, expand: bool = True) -> str | None:
        raw = self.values.get(name)
        if raw is None or not expand:
            return raw
        return self.expand(raw)

    def expand(self, text: str) -> str:
        for _ in range(20):
            expanded = REFERENCE.sub(lambda m: self.getVar(m.group(1)) or "", text)
            expanded = self._python(expanded)
            if expanded == text:
                return expanded
            text = expanded
        raise RecursionError(text)

    def _python(self, text: str) -> str:
        start = text.find("${@")
        while start != -1:
            depth, end = 0, start + 1
            for end in range(start + 1, len(text)):
                if text[end] == "{":
                    depth += 1
                elif text[end] == "}":
                    depth -= 1
                    if depth == 0:
                        break
            code = text[start + 3 : end]
            result = eval(code, self._namespace())
            text = text[:start] + str(result if result is not None else "") + text[end + 1 :]
            start = text.find("${@")
        return text

    def _namespace(self) -> dict[str, object]:
        return {"d": self, "bb": _BB(), "os": os, **self.functions}


class _Utils:
    @staticmethod
    def contains(
        variable: str, checkvalues: str, truevalue: str, falsevalue: str, d: Datastore
    ) -> str:
        have = set((d.getVar(variable) or "").split())
        return truevalue if set(checkvalues.split()) <= have else falsevalue

    @staticmethod
    def filter(variable: str, checkvalues: str, d: Datastore) -> str:
        have = (d.getVar(variable) or "").split()
        return " ".join(v for v in checkvalues.split() if v in have)

    @staticmethod
    def vercmp_string(a: str, b: str) -> int:
        left = [int(p) for p in a.split(".")]
        right = [int(p) for p in b.split(".")]
        return (left > right) - (left < right)


class SkipRecipeError(Exception):
    pass


class _BB:
    utils = _Utils()

    class parse:
        SkipRecipe = SkipRecipeError


def recipe_datastore(recipe: BitBakeFile, standard: dict[str, str]) -> Datastore:
    """The recipe's variables over the given standard ones; ?= and ??= do not override."""
    values = dict(standard)
    functions: dict[str, Callable[..., str]] = {}
    namespace: dict[str, object] = {"bb": _BB(), "os": os}
    for name, source in recipe.python_functions.items():
        exec(source, namespace)
        functions[name] = namespace[name]  # type: ignore[assignment]
    store = Datastore(values, functions)
    for a in recipe.assignments:
        if a.flag is not None or a.overrides:
            continue
        if a.op in ("?=", "??=") and a.name in values:
            continue
        if a.op == ":=":
            values[a.name] = store.expand(a.value)
        elif a.op == "+=":
            values[a.name] = values.get(a.name, "") + " " + a.value
        else:
            values[a.name] = a.value
    return store


def run_anonymous_python(recipe: BitBakeFile, store: Datastore) -> None:
    for source in recipe.anonymous_python:
        code = "def _anonymous(d):\n" + "\n".join("    " + line for line in source.splitlines())
        namespace = store._namespace()
        exec(code, namespace)
        namespace["_anonymous"](store)  # type: ignore[operator]


def yocto_problems() -> list[str]:
    problems: list[str] = []
    recipe_file = recipe_path()
    recipe = parse_bitbake(recipe_file)
    layer = parse_bitbake(LAYER / "conf" / "layer.conf")

    if recipe_file.name != f"caramel-embedded_{version()}.bb":
        problems.append(f"{recipe_file.name}: the package's version is {version()}")

    for parsed in (recipe, layer):
        where = parsed.path.relative_to(REPO)
        defined = parsed.names_set() | set(parsed.python_functions) | YOCTO_STANDARD
        for name in sorted(parsed.references() - defined):
            problems.append(f"{where}: ${{{name}}} is used but never defined")
        for a in parsed.assignments:
            # NAME_caramel-embedded (the old override syntax) must override a known NAME.
            base = a.name.removesuffix("_caramel-embedded")
            if base != a.name:
                if base not in YOCTO_STANDARD:
                    problems.append(f"{where}:{a.line}: {a.name}: {base} is not known")
            elif not a.name.startswith(LOCAL_PREFIX) and a.name not in YOCTO_STANDARD:
                problems.append(f"{where}:{a.line}: {a.name} is not a variable BitBake knows")
            if a.flag is not None and a.flag not in YOCTO_TASK_FLAGS:
                problems.append(f"{where}:{a.line}: unknown flag [{a.flag}]")
        for function, body in parsed.shell_functions.items():
            for command in re.findall(r"^\s*([a-z_][a-z0-9_]*)\b", body, re.M):
                if command.startswith("oe_") and command not in YOCTO_SHELL_FUNCTIONS:
                    problems.append(f"{where}: {function} calls unknown {command}")
    for cls in recipe.inherits:
        if cls not in YOCTO_CLASSES:
            problems.append(f"{recipe_file.name}: inherit {cls}: not a class the checks know")

    # Each skipped QA check has its reason in a comment naming it.
    comments = "\n".join(recipe.comments)
    for a in recipe.assignments:
        if a.name == "INSANE_SKIP":
            for check in a.value.split():
                if not re.search(rf"^#\s+{re.escape(check)}\s+\S", comments, re.M):
                    problems.append(f"INSANE_SKIP {check} has no comment giving its reason")

    # The tree the recipe installs from is this repository, and the files it names exist.
    store = recipe_datastore(recipe, yocto_values(Path("/tmp/D"), "x86_64"))
    tree = Path(store.getVar("CARAMEL_EMBEDDED_TREE") or "")
    if tree.resolve() != REPO:
        problems.append(f"CARAMEL_EMBEDDED_TREE is {tree}, not the repository {REPO}")
    for a in recipe.assignments:
        if a.name in ("SRC_URI", "LIC_FILES_CHKSUM"):
            for url in re.findall(r"file://(\S+)", a.value):
                problems += check_file_url(url)
    units = {u for a in recipe.assignments if a.name == "SYSTEMD_SERVICE" for u in a.value.split()}
    for unit in units:
        if not (FIRMWARE / "systemd" / unit).is_file():
            problems.append(f"SYSTEMD_SERVICE {unit} is not in firmware-integration/systemd")
    script = store.getVar("INITSCRIPT_NAME")
    if not (FIRMWARE / "sysvinit" / (script or "")).is_file():
        problems.append(f"INITSCRIPT_NAME {script} is not in firmware-integration/sysvinit")
    return problems


def check_file_url(url: str) -> list[str]:
    """file://PATH;beginline=..;endline=..;md5=..: the file exists, its checksum matches."""
    path, *parameters = url.split(";")
    options = dict(p.split("=", 1) for p in parameters)
    file = REPO / path
    if not file.is_file():
        return [f"file://{path} does not exist in the repository"]
    if "md5" in options:
        lines = file.read_text().splitlines(keepends=True)
        begin = int(options.get("beginline", "1"))
        end = int(options.get("endline", str(len(lines))))
        text = "".join(lines[begin - 1 : end])
        digest = hashlib.md5(text.encode()).hexdigest()
        if digest != options["md5"]:
            return [f"file://{path} lines {begin}-{end} {text!r}: md5 is {digest}"]
    return []


def yocto_values(destdir: Path, arch: str, tree: Path | None = None) -> dict[str, str]:
    """The standard variables of a build for one machine, as bitbake.conf would set them."""
    target_arch, tune = {
        "x86_64": ("x86_64", "m64 corei7"),
        "aarch64": ("aarch64", "aarch64 armv8a crc"),
        "armhf": ("arm", "arm armv7a vfp thumb neon callconvention-hard"),
        "armel": ("arm", "arm armv5 thumb dsp"),
    }[arch]
    recipe_dir = str(RECIPE_DIR)
    values = {
        "PN": "caramel-embedded",
        "BPN": "caramel-embedded",
        "PV": version(),
        "THISDIR": recipe_dir,
        "FILE": str(recipe_path()),
        "WORKDIR": str(destdir.parent / "work"),
        "D": str(destdir),
        "S": "${EXTERNALSRC}",
        "B": "${EXTERNALSRC_BUILD}",
        "TARGET_ARCH": target_arch,
        "TUNE_FEATURES": tune,
        "DISTRO_FEATURES": "systemd sysvinit usrmerge",
        "GLIBCVERSION": "2.39%",
        "prefix": "/usr",
        "bindir": "/usr/bin",
        "libdir": "/usr/lib",
        "datadir": "/usr/share",
        "sysconfdir": "/etc",
        "systemd_system_unitdir": "/usr/lib/systemd/system",
    }
    if tree is not None:
        values["CARAMEL_EMBEDDED_TREE"] = str(tree)
    return values


def yocto_install_script(destdir: Path, arch: str, tree: Path, **settings: str) -> str:
    """The recipe's do_install, expanded as BitBake would, with oe_runmake as plain make."""
    recipe = parse_bitbake(recipe_path())
    values = yocto_values(destdir, arch, tree)
    values.update(settings)
    store = recipe_datastore(recipe, values)
    run_anonymous_python(recipe, store)
    body = store.expand(recipe.shell_functions["do_install"])
    return 'set -e\noe_runmake() { make "$@"; }\n' + body + "\n"


def yocto_skips(arch: str, **settings: str) -> str | None:
    """The reason the recipe is skipped for this machine, or None."""
    recipe = parse_bitbake(recipe_path())
    values = yocto_values(Path("/tmp/D"), arch)
    values.update(settings)
    store = recipe_datastore(recipe, values)
    try:
        run_anonymous_python(recipe, store)
    except SkipRecipeError as skipped:
        return str(skipped)
    return None


# --- Buildroot ----------------------------------------------------------------------------
KCONFIG_SYMBOL = re.compile(r"\b(BR2_[A-Za-z0-9_]+)\b")


def kconfig_symbols(text: str) -> tuple[set[str], set[str]]:
    """(defined, used) Kconfig symbols of a Config.in."""
    defined = set(re.findall(r"^config\s+(BR2_[A-Za-z0-9_]+)", text, re.M))
    used: set[str] = set()
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(("depends on", "default", "select", "if ")) or stripped == "if":
            used |= set(KCONFIG_SYMBOL.findall(stripped))
    return defined, used


def buildroot_problems() -> list[str]:
    problems: list[str] = []
    config = (BUILDROOT_PACKAGE / "Config.in").read_text()
    makefile = (BUILDROOT_PACKAGE / "caramel-embedded.mk").read_text()
    defined, used = kconfig_symbols(config)
    for symbol in sorted(used - defined - BUILDROOT_SYMBOLS):
        problems.append(f"Config.in uses {symbol}, defined nowhere")
    package = "BR2_PACKAGE_CARAMEL_EMBEDDED"
    block = config.split(f"config {package}\n", 1)[1].split("\nif ", 1)[0]
    if "depends on BR2_TOOLCHAIN_USES_GLIBC" not in block:
        problems.append(f"{package} does not depend on BR2_TOOLCHAIN_USES_GLIBC")
    if f"depends on {package}_ARCH_SUPPORTS" not in block:
        problems.append(f"{package} does not depend on the architecture list")
    # Kconfig help text: "help", then lines indented by a tab and two spaces.
    for number, line in enumerate(config.splitlines(), 1):
        if line.startswith("\t  ") or not line.strip():
            continue
        previous = config.splitlines()[number - 2] if number > 1 else ""
        if (
            previous.strip()
            and previous.startswith("\t  ")
            and line.startswith("\t ")
            and not line.startswith("\t  ")
        ):
            problems.append(f"Config.in:{number}: help text indented badly")

    # The .mk: variables of the package are CARAMEL_EMBEDDED_*, those Buildroot reads are
    # spelled as it reads them, and the Kconfig symbols it reads exist.
    assigned = set(re.findall(r"^(?:define\s+)?(CARAMEL_EMBEDDED_[A-Z0-9_]+)", makefile, re.M))
    own = {
        "TREE",
        "ARCH",
        "FORM",
        "STORE",
        "CA_CERT",
        "MAKE_OPTS",
    }
    for name in sorted(assigned):
        suffix = name.removeprefix("CARAMEL_EMBEDDED_")
        if suffix not in BUILDROOT_PACKAGE_VARIABLES and suffix not in own:
            problems.append(f"caramel-embedded.mk sets {name}: not a variable Buildroot reads")
    for symbol in sorted(set(KCONFIG_SYMBOL.findall(makefile)) - defined - BUILDROOT_SYMBOLS):
        if symbol != "BR2_EXTERNAL_CARAMEL_EMBEDDED_PATH":
            problems.append(f"caramel-embedded.mk uses {symbol}, defined in no Config.in")
    mk_version = re.search(r"^CARAMEL_EMBEDDED_VERSION = (\S+)$", makefile, re.M)
    if mk_version is None or mk_version.group(1) != version():
        problems.append(f"CARAMEL_EMBEDDED_VERSION is not the package's version {version()}")

    name = re.search(r"^name:\s*(\S+)", (BUILDROOT / "external.desc").read_text(), re.M)
    if name is None or name.group(1) != "CARAMEL_EMBEDDED":
        problems.append("external.desc: name is not CARAMEL_EMBEDDED")
    for text in (
        makefile,
        (BUILDROOT / "Config.in").read_text(),
        (BUILDROOT / "external.mk").read_text(),
    ):
        for path_variable in re.findall(r"BR2_EXTERNAL_([A-Z0-9_]+)_PATH", text):
            if path_variable != "CARAMEL_EMBEDDED":
                problems.append(f"BR2_EXTERNAL_{path_variable}_PATH: not this external tree")
    for sourced in re.findall(
        r'source\s+"\$BR2_EXTERNAL_CARAMEL_EMBEDDED_PATH/([^"]+)"',
        (BUILDROOT / "Config.in").read_text(),
    ):
        if not (BUILDROOT / sourced).is_file():
            problems.append(f"Config.in sources {sourced}, which does not exist")
    return problems


def problems() -> list[str]:
    return yocto_problems() + buildroot_problems()


def main() -> int:
    found = problems()
    for problem in found:
        print(problem)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
