"""caramel-embedded(1), written from the command's own option table.

``--help``, the README's option table and the man page come from one table
(``caramel_embedded/options.py``), so they cannot drift apart: ``make man`` writes the page
into the tree (``firmware-integration/caramel-embedded.1``), where ``make install``, the
Debian package and the Yocto and Buildroot recipes take it without Python, and
``tests/test_manpage.py`` checks that the page in the tree is what this script writes today
and that ``man`` shows every entry of ``--help``.

Usage: python build/manpage.py [OUTPUT]   (stdout without OUTPUT)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caramel_embedded import exits, options
from caramel_embedded.version import __version__

PAGE = Path(__file__).resolve().parents[1] / "firmware-integration" / "caramel-embedded.1"

EXIT_STATUSES = (
    (exits.HELD, "a certificate was installed, or the installed one is still current"),
    (exits.LOCKED, "another invocation holds the lock on the combined file"),
    (
        exits.WAITING,
        "the request waits for a signature: just posted, still pending, or posted anew "
        "after a rejection",
    ),
    (
        exits.ERROR,
        "any other error (usage, network, TLS, server error, bad CA, bad input, internal "
        "error), with one line on stderr",
    ),
)
FILES = (
    (str(options.DEFAULT_FILE), "the combined file: private key, certificate, request"),
    (
        f"{options.DEFAULT_RUNTIME_DIR}/hint-*",
        "the server's hint, kept only on a tmpfs or ramfs (--runtime-dir)",
    ),
    (
        "/etc/default/caramel-embedded",
        "the settings (CARAMEL_* variables) that the shipped systemd units and init script read",
    ),
)
EXAMPLES = (
    (
        "the client id from the hardware, the CA given",
        "caramel-embedded --ca-cert ca.pem ca.example.com",
    ),
    (
        "a server under a path prefix, a given id, the file for a service's user",
        "caramel-embedded https://ca.example.com:8443/caramel unit-0042 --owner app:app "
        "--mode 0640",
    ),
    ("the id a run would use", "caramel-embedded --print-client-id --client-id-from mac:eth0"),
)


def text(words: str) -> str:
    """Words as roff prints them: backslashes escaped, no line taken for a request."""
    escaped = words.replace("\\", "\\e").replace("-", "\\-")
    return "\\&" + escaped if escaped.startswith((".", "'")) else escaped


def label(names: tuple[str, ...], value: str | None) -> str:
    bold = ", ".join(f"\\fB{text(name)}\\fR" for name in names)
    return bold + (f" \\fI{text(value)}\\fR" if value is not None else "")


def render() -> str:
    """The whole page, the same bytes for the same table and version."""
    lines = [
        f'.TH CARAMEL\\-EMBEDDED 1 "" "caramel\\-embedded {text(__version__)}" "User Commands"',
        ".nh",
        ".ad l",
        ".SH NAME",
        "caramel\\-embedded \\- one\\-shot Caramel certificate client for embedded devices",
        ".SH SYNOPSIS",
        text(options.USAGE).replace("caramel\\-embedded", "\\fBcaramel\\-embedded\\fR", 1),
        ".SH DESCRIPTION",
        text(options.DESCRIPTION),
        ".SH ARGUMENTS",
    ]
    for name, meaning in options.POSITIONALS:
        lines += [".TP", f"\\fI{text(name)}\\fR", text(meaning)]
    lines.append(".SH OPTIONS")
    for names, value, meaning in options.OPTIONS:
        lines += [".TP", label(names, value), text(meaning)]
    lines.append(".SH EXIT STATUS")
    for status, meaning in EXIT_STATUSES:
        lines += [".TP", f"\\fB{status}\\fR", text(meaning)]
    lines += [
        ".PP",
        text(
            "No other status comes from the client. The one-file binary's launcher exits 255 "
            "when it cannot unpack itself, before the client runs: treat every status but "
            f"{exits.HELD}, {exits.LOCKED} and {exits.WAITING} as an error."
        ),
        ".SH ENVIRONMENT",
        text(options.EPILOG),
        ".SH FILES",
    ]
    for path, meaning in FILES:
        lines += [".TP", f"\\fI{text(path)}\\fR", text(meaning)]
    lines.append(".SH EXAMPLES")
    for what, command in EXAMPLES:
        lines += [".PP", text(what) + ":", ".PP", ".RS", f"\\f(CR{text(command)}\\fR", ".RE"]
    lines += [
        ".SH SEE ALSO",
        text(
            "The interface contract, the troubleshooting table for each reason= of --status, "
            "and the firmware integration guide: docs/ in the caramel-embedded source."
        ),
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    page = render()
    if len(argv) > 1:
        Path(argv[1]).write_text(page)
    else:
        sys.stdout.write(page)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
