"""Our one change to PyInstaller's launcher: the kernel copies the stored entries.

The one-file binary's launcher unpacks ~14 MB into ``$TMPDIR/_MEI*`` at every start. For
an entry held uncompressed (the stored form, build/freeze.sh ``--store yes``) PyInstaller
copies it through stdio, 8 KiB freads and fwrites: some 3,300 write calls per start, most
of what the stored one-file form costs beyond the one-dir bundle (docs/performance.md).
On Linux, sendfile(2) from the archive's descriptor at the entry's offset lets the kernel
copy file to file in a few calls, with no copy through the launcher's buffers.

build/freeze.sh unpacks PyInstaller's sdist (hash-checked from build/requirements.lock),
runs ``apply`` on it, and builds PyInstaller from that directory, so the launcher it
compiles carries the change on every architecture (the ARM roots run the same script:
python3 alone, no ``patch``). The change is two insertions at small anchors, and the
function they go into must be, byte for byte, the one this change was written and tested
against (its SHA-256 below): a PyInstaller upgrade that touches it fails the build with
one line instead of silently shipping the slow copy, or a fast one built on changed
assumptions. The assumptions: the function receives the archive stream positioned at the
entry's data (so ``ftello`` is the entry's offset) and a fresh output stream, and its own
chunk loop copies from the stream's position; a copy the kernel cannot do (EINVAL, ENOSYS,
EXDEV, EOPNOTSUPP: another kernel, another file system; EPERM: a system call filter that
denies sendfile) continues in that loop from where the kernel stopped. Any other error
(ENOSPC on a full ``$TMPDIR``) is the launcher's usual failure: its ``[PYI-...:ERROR]``
report and its status 255, as with the chunk loop.

    build/launcher_patch.py apply SDIST_DIR
    build/launcher_patch.py split-lock LOCK NAME ONE_OUT REST_OUT

``split-lock`` writes the lock's requirement NAME (with its hashes) to ONE_OUT and every
other requirement to REST_OUT: the sdist is fetched from the one, hash-checked, and the
rest installed from the other as before.
"""

from __future__ import annotations

import hashlib
import re
import sys
from pathlib import Path

# The file and function changed, and the digest of the function as PyInstaller 6.22.3 has it.
SOURCE = Path("bootloader") / "src" / "pyi_archive.c"
FUNCTION_NAME = "_pyi_archive_extract2fs_uncompressed"
FUNCTION_HEAD = f"static int\n{FUNCTION_NAME}("
FUNCTION_SHA256 = "efeccea79c3fada2960ebfbc772c2c250c10438bf70e323d9a0b3b19b1175bb5"
# Where the kernel copy goes: after the byte count is set, before the chunk loop.
LOOP_ANCHOR = "remaining_size = toc_entry->uncompressed_length;\n"
MARKER = "caramel-embedded (build/launcher_patch.py)"

HELPER = f"""\
#if defined(__linux__)
#include <errno.h>
#include <sys/sendfile.h>

/*
 * {MARKER}: copy a stored entry with the kernel,
 * sendfile(2) from the archive's descriptor at the entry's offset into the output
 * file, instead of 8 KiB freads and fwrites. Returns 0 when the entry is copied, -1
 * on an error it has reported, and 1 when the kernel cannot copy between these two
 * files: the caller's chunk loop then copies what is left (*remaining_size), the
 * archive stream having been moved to where the kernel stopped.
 */
static int
_caramel_copy_by_kernel(FILE *archive_fp, const struct TOC_ENTRY *toc_entry, FILE *out_fp,
                        uint64_t *remaining_size)
{{
    const size_t MAX_COUNT = 0x40000000;
    off_t offset;
    int rc = 0;

    if (fflush(out_fp) != 0) {{
        PYI_PERROR("fflush", "Failed to extract %s: failed to write data!\\n",
                   toc_entry->name);
        return -1;
    }}
    offset = ftello(archive_fp);
    if (offset < 0) {{
        return 1;
    }}
    while (*remaining_size > 0) {{
        size_t count = (*remaining_size < MAX_COUNT) ? (size_t)*remaining_size : MAX_COUNT;
        ssize_t copied = sendfile(fileno(out_fp), fileno(archive_fp), &offset, count);
        if (copied > 0) {{
            *remaining_size -= (uint64_t)copied;
        }} else if (copied == 0) {{
            PYI_ERROR("Failed to extract %s: the archive ends inside its data!\\n",
                      toc_entry->name);
            return -1;
        }} else if (errno == EINTR) {{
            continue;
        }} else if (errno == EINVAL || errno == ENOSYS || errno == EXDEV
                   || errno == EOPNOTSUPP || errno == EPERM) {{
            rc = 1;
            break;
        }} else {{
            PYI_PERROR("sendfile", "Failed to extract %s: failed to copy data!\\n",
                       toc_entry->name);
            return -1;
        }}
    }}
    /* sendfile() with an offset leaves the descriptor where it was: the stream goes on
     * after what the kernel copied. */
    if (pyi_fseek(archive_fp, offset, SEEK_SET) < 0) {{
        PYI_PERROR("fseek", "Failed to extract %s: failed to seek past the copied data!\\n",
                   toc_entry->name);
        return -1;
    }}
    return rc;
}}
#endif

"""

CALL = f"""\
#if defined(__linux__)
    /* {MARKER} */
    if (remaining_size > 0) {{
        rc = _caramel_copy_by_kernel(archive_fp, toc_entry, out_fp, &remaining_size);
        if (rc <= 0) {{
            return rc;
        }}
        rc = 0;
    }}
#endif
"""


class PatchError(Exception):
    """The sources are not the ones this change was written for: the build must stop."""


def function_text(source: str) -> tuple[int, int]:
    """Start and end of the function to change: its head once, up to its closing brace."""
    if source.count(FUNCTION_HEAD) != 1:
        raise PatchError(
            f"{SOURCE}: expected the function {FUNCTION_NAME}() once, "
            f"found it {source.count(FUNCTION_HEAD)} times"
        )
    start = source.index(FUNCTION_HEAD)
    end = source.find("\n}\n", start)
    if end < 0:
        raise PatchError(f"{SOURCE}: no end to {FUNCTION_NAME}()")
    return start, end + len("\n}\n")


def patch_archive_source(source: str, expected_sha256: str = FUNCTION_SHA256) -> str:
    """pyi_archive.c with the kernel copy, or PatchError if the function is not exactly
    the one pinned by its digest (then the anchors' meaning is not known)."""
    if MARKER in source:
        raise PatchError(f"{SOURCE}: already patched")
    start, end = function_text(source)
    function = source[start:end]
    digest = hashlib.sha256(function.encode()).hexdigest()
    if digest != expected_sha256:
        raise PatchError(
            f"{SOURCE}: {FUNCTION_NAME}() is not the one this patch was "
            f"written for (sha256 {digest}, expected {expected_sha256}): review the change"
        )
    if function.count(LOOP_ANCHOR) != 1:
        raise PatchError(f"{SOURCE}: expected {LOOP_ANCHOR.strip()!r} once in the function")
    at = function.index(LOOP_ANCHOR) + len(LOOP_ANCHOR)
    patched = function[:at] + CALL + function[at:]
    # The helper goes before the function's comment, which stays with its function.
    comment = source.rfind("\n/*", 0, start) + 1
    if comment == 0 or not source[comment:start].endswith(" */\n"):
        raise PatchError(f"{SOURCE}: no comment just before {FUNCTION_NAME}()")
    return source[:comment] + HELPER + source[comment:start] + patched + source[end:]


def split_lock(lock: str, name: str) -> tuple[str, str]:
    """The requirement `name` of a pip-compile lock (its line and its hash lines), and the
    lock without it. A requirement is a line at column 0 with its indented continuation."""
    blocks: list[list[str]] = []
    for line in lock.splitlines(keepends=True):
        if line[:1].isspace() and blocks:
            blocks[-1].append(line)
        else:
            blocks.append([line])
    pattern = re.compile(rf"{re.escape(name)}==", re.IGNORECASE)
    chosen = [block for block in blocks if pattern.match(block[0])]
    if len(chosen) != 1:
        raise PatchError(f"the lock pins {name} {len(chosen)} times, expected once")
    one = "".join(chosen[0])
    rest = "".join("".join(block) for block in blocks if block is not chosen[0])
    return one, rest


def main(arguments: list[str]) -> int:
    """The two steps build/freeze.sh runs; a failure is one line and status 1."""
    try:
        if len(arguments) == 2 and arguments[0] == "apply":
            path = Path(arguments[1]) / SOURCE
            path.write_text(patch_archive_source(path.read_text()))
            return 0
        if len(arguments) == 5 and arguments[0] == "split-lock":
            one, rest = split_lock(Path(arguments[1]).read_text(), arguments[2])
            Path(arguments[3]).write_text(one)
            Path(arguments[4]).write_text(rest)
            return 0
    except (PatchError, OSError) as error:
        print(f"launcher_patch.py: {error}", file=sys.stderr)
        return 1
    print(
        "usage: launcher_patch.py apply SDIST_DIR | split-lock LOCK NAME ONE_OUT REST_OUT",
        file=sys.stderr,
    )
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
