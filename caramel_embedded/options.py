"""The command line and its environment variables, turned into one frozen ``Settings``.

Every problem is a ``UsageError`` (exit 127, one line), never argparse's exit 2. An
environment variable set to the empty string counts as unset (environment files keep
empty placeholders), with one exception: an empty CLIENT_ID is an error, because falling
back to a hardware id would change the device's identity.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import NamedTuple, NoReturn

from caramel_embedded import __version__, client_id
from caramel_embedded.combined_file import Ownership
from caramel_embedded.errors import ClientIdError, UsageError
from caramel_embedded.server_address import ServerAddress
from caramel_embedded.server_address import parse as parse_server

DEFAULT_FILE = Path("/var/lib/caramel/client.pem")
DEFAULT_TIMEOUT = 30.0
MAX_TIMEOUT = 3600.0
KEY_SIZES = (2048, 4096)
DEFAULT_WAIT_INTERVAL = 15.0


class Settings(NamedTuple):
    """Everything one invocation was asked to do."""

    server: ServerAddress | None
    client_id: str | None  # explicit; None means: resolve from client_id_from
    client_id_from: str
    file: Path
    ca_cert: Path | None
    ownership: Ownership
    key_bits: int
    timeout: float
    print_client_id: bool
    verbose: bool
    syslog: bool
    show_version: bool
    identity_root: Path = Path("/")  # where /sys, /proc and /etc are read (CARAMEL_IDENTITY_ROOT)
    wait: bool = False  # keep asking until a certificate is held (servers, not devices)
    wait_limit: float | None = None  # seconds; None: without end
    wait_interval: float = DEFAULT_WAIT_INTERVAL


class _Formatter(argparse.HelpFormatter):
    """A fixed width: asking the terminal imports shutil on every start, for --help only."""

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=88)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see --help)")


def _parser() -> _Parser:
    parser = _Parser(
        prog="caramel-embedded",
        description=(
            "Make sure this device holds a private key and a certificate signed by a Caramel "
            "CA. One invocation, never blocking: exit 0 installed or unchanged, 1 locked by "
            "another invocation, 69 waiting for a signature, 127 any other error."
        ),
        epilog=(
            "Environment: CARAMEL_SERVER, CARAMEL_CLIENT_ID, CARAMEL_CLIENT_ID_FROM, "
            "CARAMEL_FILE, CARAMEL_CA_CERT, CARAMEL_OWNER, CARAMEL_MODE, CARAMEL_TIMEOUT, "
            "CARAMEL_WAIT (1), CARAMEL_WAIT_LIMIT, CARAMEL_WAIT_INTERVAL stand in for the "
            "arguments; the command line wins."
        ),
        allow_abbrev=False,
        add_help=False,
        formatter_class=_Formatter,
    )
    add = parser.add_argument
    add(
        "server",
        nargs="?",
        metavar="SERVER",
        help="host, host:port or https://host[:port][/prefix]",
    )
    add("client_id", nargs="?", metavar="CLIENT_ID", help="the client id (certificate CN)")
    add(
        "--client-id-from",
        metavar="SOURCE",
        help="serial, mac, mac:IFACE, machine-id, file:PATH or auto (default: auto = "
        "hardware serial, else MAC of the first physical interface)",
    )
    add("--file", metavar="PATH", help=f"combined key + certificate file (default {DEFAULT_FILE})")
    add("--ca-cert", metavar="PATH", help="CA certificate, PEM (default: the embedded CA)")
    add("--owner", metavar="USER[:GROUP]", help="owner of the combined file (default: unchanged)")
    add("--mode", metavar="OCTAL", help="permissions of the combined file (default 0600)")
    add("--key-bits", metavar="{2048,4096}", help="RSA key size for a new key (default 2048)")
    add("--timeout", metavar="SECONDS", help="bound on all network work (default 30)")
    add(
        "--wait",
        action="store_true",
        help="for servers: ask again while the request waits (69) or the file is locked (1), "
        "exit 0 once a certificate is held, 127 on any error",
    )
    add(
        "--wait-limit",
        metavar="SECONDS",
        help="end --wait with 69 after this long (default: never)",
    )
    add(
        "--wait-interval",
        metavar="SECONDS",
        help=f"pause between tries of --wait, +-1/5 jitter (default {DEFAULT_WAIT_INTERVAL:g})",
    )
    add("--print-client-id", action="store_true", help="print the resolved client id, exit 0")
    add("-v", "--verbose", action="store_true", help="progress on stderr")
    add("--syslog", action="store_true", help="also log to syslog")
    add("--version", action="store_true", help="print the version and the embedded CA, exit 0")
    add("-h", "--help", action="help", help="show this help, exit 0")
    return parser


def parse(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> Settings:
    """Settings from the command line, falling back to the environment, then defaults."""
    arguments = _parser().parse_args(list(argv))

    def setting(value: str | None, variable: str) -> str | None:
        if value is not None:
            return value
        return environ.get(variable) or None

    server_text = setting(arguments.server, "CARAMEL_SERVER")
    explicit_id = arguments.client_id
    if explicit_id is None:
        explicit_id = environ.get("CARAMEL_CLIENT_ID")
    if explicit_id is not None and explicit_id == "":
        raise UsageError("CLIENT_ID is empty; give an id or leave it out entirely")
    if server_text is None and not (arguments.print_client_id or arguments.version):
        raise UsageError("SERVER is required (argument or CARAMEL_SERVER; see --help)")
    try:
        source = client_id.check_source(
            setting(arguments.client_id_from, "CARAMEL_CLIENT_ID_FROM") or "auto"
        )
    except ClientIdError as error:
        raise UsageError(str(error)) from None
    ca_text = setting(arguments.ca_cert, "CARAMEL_CA_CERT")
    return Settings(
        server=parse_server(server_text) if server_text is not None else None,
        client_id=explicit_id,
        client_id_from=source,
        file=Path(setting(arguments.file, "CARAMEL_FILE") or DEFAULT_FILE),
        ca_cert=Path(ca_text) if ca_text else None,
        ownership=Ownership(
            _mode(setting(arguments.mode, "CARAMEL_MODE")),
            *_owner(setting(arguments.owner, "CARAMEL_OWNER")),
        ),
        key_bits=_key_bits(arguments.key_bits),
        timeout=_timeout(setting(arguments.timeout, "CARAMEL_TIMEOUT")),
        print_client_id=arguments.print_client_id,
        verbose=arguments.verbose,
        syslog=arguments.syslog,
        show_version=arguments.version,
        identity_root=Path(environ.get("CARAMEL_IDENTITY_ROOT") or "/"),
        wait=arguments.wait or _flag(environ.get("CARAMEL_WAIT"), "CARAMEL_WAIT"),
        wait_limit=_seconds(setting(arguments.wait_limit, "CARAMEL_WAIT_LIMIT"), "--wait-limit"),
        wait_interval=_seconds(
            setting(arguments.wait_interval, "CARAMEL_WAIT_INTERVAL"), "--wait-interval"
        )
        or DEFAULT_WAIT_INTERVAL,
    )


def _flag(text: str | None, variable: str) -> bool:
    if not text or text == "0":
        return False
    if text == "1":
        return True
    raise UsageError(f"{variable}={text!r}: expected 1 or 0")


def _seconds(text: str | None, option: str) -> float | None:
    """A positive number of seconds, up to a year, or None when not given."""
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= 366 * 86400:
        raise UsageError(f"{option} {text!r}: expected seconds, more than 0")
    return seconds


def _mode(text: str | None) -> int:
    if text is None:
        return 0o600
    try:
        mode = int(text, 8)
    except ValueError:
        mode = -1
    if not 0 <= mode <= 0o777 or not mode & 0o400:
        raise UsageError(
            f"--mode {text!r}: expected octal permissions up to 0777 that let the owner read"
        )
    return mode


def _owner(text: str | None) -> tuple[int, int]:
    """(uid, gid) for USER[:GROUP], names or numbers; -1 leaves a part unchanged."""
    if text is None:
        return -1, -1
    user, _, group = text.partition(":")
    return _lookup(user, "user"), _lookup(group, "group")


def _lookup(name: str, kind: str) -> int:
    if not name:
        return -1
    if name.isdigit():
        return int(name)
    import grp  # only when an owner is asked for
    import pwd

    try:
        if kind == "user":
            return pwd.getpwnam(name).pw_uid
        return grp.getgrnam(name).gr_gid
    except KeyError:
        raise UsageError(f"--owner: no such {kind} {name!r}") from None


def _key_bits(text: str | None) -> int:
    if text is None:
        return 2048
    if not text.isdigit() or int(text) not in KEY_SIZES:
        raise UsageError(f"--key-bits {text!r}: expected 2048 or 4096")
    return int(text)


def _timeout(text: str | None) -> float:
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= MAX_TIMEOUT:
        raise UsageError(f"--timeout {text!r}: expected seconds, more than 0, at most 3600")
    return seconds


def version_text() -> str:
    """The version and the embedded CA, for --version."""
    from caramel_embedded import trust
    from caramel_embedded.errors import CACertificateError

    lines = [f"caramel-embedded {__version__}"]
    if not trust.EMBEDDED_CA.exists():
        lines.append("no embedded CA")
        return "\n".join(lines)
    try:
        anchor = trust.load(None)
    except CACertificateError as error:
        lines.append(f"embedded CA: unusable ({error})")
    else:
        for ca in anchor.certificates:  # a bundle names every CA, the request's first
            lines.append(f"embedded CA: {ca.subject_text}")
            lines.append(f"embedded CA SHA-256: {ca.sha256_fingerprint}")
    return "\n".join(lines)
