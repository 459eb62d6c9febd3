"""build/launcher_patch.py: the launcher change goes in once, or the build stops.

The change is made to PyInstaller's sources by build/freeze.sh before it compiles the
launcher; tests/frozen/test_kernel_copy.py shows on the real binary what it does. Here: that
it lands where it must, and that sources it was not written for (another PyInstaller, the
function changed, missing, doubled, patched already) are refused with a reason instead of
being built slow or wrong. The sources here are made up for it.

In-process tests of a module of the build: the package pass only (``in_process``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.script_module import load

pytestmark = pytest.mark.in_process

BUILD = Path(__file__).resolve().parents[1] / "build"

patch = load(BUILD / "launcher_patch.py", "launcher_patch")

FUNCTION = (
    f"{patch.FUNCTION_HEAD}FILE *a, const struct TOC_ENTRY *t, FILE *o)\n{{\n"
    "    uint64_t remaining_size;\n"
    "    int rc = 0;\n"
    f"    {patch.LOOP_ANCHOR}"
    "    while (remaining_size > 0) {\n        /* the chunk loop */\n    }\n"
    "    return rc;\n}\n"
)
DIGEST = hashlib.sha256(FUNCTION.encode()).hexdigest()


def source(function: str = FUNCTION) -> str:
    """A pyi_archive.c: a function before, the commented one to change, one after."""
    return (
        "static int\nbefore(void)\n{\n    return 0;\n}\n\n"
        "/*\n * Its comment.\n */\n" + function + "\nstatic int\nafter(void)\n{\n}\n"
    )


def test_the_kernel_copy_goes_before_the_chunk_loop_and_the_helper_before_the_comment() -> None:
    patched = patch.patch_archive_source(source(), DIGEST)
    helper = patched.index("_caramel_copy_by_kernel(FILE *archive_fp")
    comment = patched.index("/*\n * Its comment.")
    call = patched.index("rc = _caramel_copy_by_kernel(")
    assert patched.index("before(void)") < helper < comment < patched.index(patch.FUNCTION_HEAD)
    assert patched.index(patch.LOOP_ANCHOR) < call < patched.index("while (remaining_size")
    assert patched.index("after(void)") > call
    # Nothing of the original is lost: removing the two insertions gives it back.
    assert patched.replace(patch.HELPER, "").replace(patch.CALL, "") == source()


def test_the_pinned_digest_is_that_of_the_function_it_was_written_for() -> None:
    with pytest.raises(patch.PatchError, match="is not the one this patch was written for"):
        patch.patch_archive_source(source(FUNCTION.replace("int rc = 0", "int rc = 1")), DIGEST)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (source().replace(patch.FUNCTION_HEAD, "static int\nother("), "found it 0 times"),
        (source() + FUNCTION, "found it 2 times"),
        (source().replace(" */\n" + patch.FUNCTION_HEAD, patch.FUNCTION_HEAD), "no comment"),
    ],
)
def test_sources_it_was_not_written_for_are_refused(text: str, reason: str) -> None:
    with pytest.raises(patch.PatchError, match=reason):
        patch.patch_archive_source(text, DIGEST)


def test_a_patched_source_is_not_patched_again() -> None:
    with pytest.raises(patch.PatchError, match="already patched"):
        patch.patch_archive_source(patch.patch_archive_source(source(), DIGEST), DIGEST)


LOCK = """\
# header comment
altgraph==0.17.5 \\
    --hash=sha256:aa
    # via pyinstaller
pyinstaller==6.22.3 \\
    --hash=sha256:bb \\
    --hash=sha256:cc
    # via -r requirements.in
pyinstaller-hooks-contrib==2026.9 \\
    --hash=sha256:dd
"""


def test_the_lock_splits_into_the_one_requirement_and_the_rest() -> None:
    one, rest = patch.split_lock(LOCK, "pyinstaller")
    assert one == (
        "pyinstaller==6.22.3 \\\n    --hash=sha256:bb \\\n    --hash=sha256:cc\n"
        "    # via -r requirements.in\n"
    )
    assert "pyinstaller==" not in rest
    assert "pyinstaller-hooks-contrib==2026.9 \\\n    --hash=sha256:dd\n" in rest
    assert len(one) + len(rest) == len(LOCK)


def test_a_lock_without_the_requirement_is_refused() -> None:
    with pytest.raises(patch.PatchError, match="pins cffi 0 times"):
        patch.split_lock(LOCK, "cffi")


def test_the_command_line_says_one_line_and_exits_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / patch.SOURCE).parent.mkdir(parents=True)
    (tmp_path / patch.SOURCE).write_text(source())
    assert patch.main(["apply", str(tmp_path)]) == 1
    assert capsys.readouterr().err.count("\n") == 1
    assert patch.main(["nonsense"]) == 1
