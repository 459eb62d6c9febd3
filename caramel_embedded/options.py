"""The command line and its environment variables, turned into one frozen ``Settings``.

Every problem is a ``UsageError`` (an error, one line). The words are read by
``command_line`` from the table here (``OPTIONS``), which also makes the help. An
environment variable set to the empty string counts as unset (environment files keep
empty placeholders), with one exception: an empty CLIENT_ID is an error, because falling
back to a hardware id would change the device's identity.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from caramel_embedded import client_id, command_line, exits
from caramel_embedded.combined_file import Ownership
from caramel_embedded.errors import ClientIdError, HelpShown, UsageError
from caramel_embedded.limits import (
    DEFAULT_HINT_LIMIT,
    DEFAULT_KEY_BITS,
    KEY_SIZES,
    MAX_HINT_LIMIT,
    MAX_TIMEOUT,
    key_sizes_text,
)
from caramel_embedded.record import Record
from caramel_embedded.server_address import ServerAddress
from caramel_embedded.server_address import parse as parse_server
from caramel_embedded.version import __version__

if TYPE_CHECKING:
    from caramel_embedded.proxy import Proxy

DEFAULT_FILE = Path("/var/lib/caramel/client.pem")
DEFAULT_TIMEOUT = 30.0
DEFAULT_WAIT_INTERVAL = 15.0
DEFAULT_RUNTIME_DIR = Path("/run/caramel-embedded")  # without systemd's $RUNTIME_DIRECTORY
KEY_STORES = ("file", "tpm2")
DEFAULT_TPM = "device:/dev/tpmrm0"  # the kernel's resource manager


class Settings(Record):
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
    status_line: bool = False  # --status: one key=value line on stdout at the end
    print_ca: bool = False  # --print-ca: the trust anchor in use, as PEM
    print_sbom: bool = False  # --sbom: the software bill of materials the build carries
    runtime_dir: Path = DEFAULT_RUNTIME_DIR  # where the server's hint is kept (tmpfs only)
    check_now: bool = False  # ask the server even while its hint says nothing is new
    hint_limit: int = DEFAULT_HINT_LIMIT  # seconds: the longest a server's hint is followed
    proxy: Proxy | None = None  # the HTTPS proxy to tunnel through (CONNECT), if any
    key_store: str = "file"  # where keys are made and kept: "file" or "tpm2"
    tpm: str = DEFAULT_TPM  # the TCTI of the TPM of tpm2 mode


USAGE = "caramel-embedded [OPTIONS] SERVER [CLIENT_ID]"
DESCRIPTION = (
    "Make sure this device holds a private key and a certificate signed by a Caramel CA. "
    f"One invocation, never blocking: exit {exits.HELD} installed or unchanged, "
    f"{exits.LOCKED} locked by another invocation, {exits.WAITING} waiting for a signature, "
    f"{exits.ERROR} any other error."
)
EPILOG = (
    "Environment: CARAMEL_SERVER, CARAMEL_CLIENT_ID, CARAMEL_CLIENT_ID_FROM, CARAMEL_FILE, "
    "CARAMEL_CA_CERT, CARAMEL_OWNER, CARAMEL_MODE, CARAMEL_KEY_STORE, CARAMEL_TPM, "
    "CARAMEL_TIMEOUT, CARAMEL_WAIT (1), CARAMEL_WAIT_LIMIT, CARAMEL_WAIT_INTERVAL, "
    "CARAMEL_PROXY, CARAMEL_RUNTIME_DIR, CARAMEL_CHECK_NOW (1) stand in for the arguments; "
    "the command line wins. https_proxy, HTTPS_PROXY and no_proxy are read as curl reads them."
)
POSITIONALS = (
    ("SERVER", "host, host:port or https://host[:port][/prefix]"),
    ("CLIENT_ID", "the client id (certificate CN)"),
)
OPTIONS: tuple[command_line.Option, ...] = (
    (
        ("--client-id-from",),
        "SOURCE",
        "serial, mac, mac:IFACE, machine-id, file:PATH or auto (default: auto = hardware "
        "serial, else MAC of the first physical interface)",
    ),
    (("--file",), "PATH", f"combined key + certificate file (default {DEFAULT_FILE})"),
    (("--ca-cert",), "PATH", "CA certificate, PEM (default: the embedded CA)"),
    (("--owner",), "USER[:GROUP]", "owner of the combined file (default: unchanged)"),
    (("--mode",), "OCTAL", "permissions of the combined file (default 0600)"),
    (
        ("--key-bits",),
        "{" + ",".join(map(str, KEY_SIZES)) + "}",
        f"RSA key size for a new key (default {DEFAULT_KEY_BITS})",
    ),
    (
        ("--key-store",),
        "{" + ",".join(KEY_STORES) + "}",
        "where keys are made and kept: in the combined file, or inside a TPM 2.0 (default file)",
    ),
    (
        ("--tpm",),
        "TCTI",
        f"the TPM of --key-store tpm2, a TCTI string (default {DEFAULT_TPM})",
    ),
    (("--timeout",), "SECONDS", "bound on all network work (default 30)"),
    (
        ("--wait",),
        None,
        f"for servers: ask again while the request waits ({exits.WAITING}) or the file is "
        f"locked ({exits.LOCKED}), exit {exits.HELD} once a certificate is held, "
        f"{exits.ERROR} on any error",
    ),
    (
        ("--wait-limit",),
        "SECONDS",
        f"end --wait with {exits.WAITING} after this long (default: never)",
    ),
    (
        ("--wait-interval",),
        "SECONDS",
        f"pause between tries of --wait, +-1/5 jitter (default {DEFAULT_WAIT_INTERVAL:g})",
    ),
    (
        ("--proxy",),
        "URL",
        "HTTPS proxy, http://[user:password@]host[:port], tunnelled with CONNECT "
        "(default: https_proxy; empty: none)",
    ),
    (
        ("--runtime-dir",),
        "PATH",
        "where the server's hint is kept, a tmpfs or ramfs only "
        "(default: $RUNTIME_DIRECTORY, else /run/caramel-embedded)",
    ),
    (("--check-now",), None, "ask the server even while its hint says there is nothing new"),
    (
        ("--hint-limit",),
        "SECONDS",
        f"the longest a server's hint is followed, 0: never (default {DEFAULT_HINT_LIMIT})",
    ),
    (("--status",), None, "print one line of key=value words on stdout at the end (for sh)"),
    (("--print-client-id",), None, f"print the resolved client id, exit {exits.HELD}"),
    (("--print-ca",), None, f"print the CA certificate(s) in use, exit {exits.HELD}"),
    (
        ("--sbom",),
        None,
        "print the software bill of materials carried by the build (CycloneDX JSON), "
        f"exit {exits.HELD}",
    ),
    (("-v", "--verbose"), None, "progress on stderr"),
    (("--syslog",), None, "also log to syslog"),
    (("--version",), None, f"print the version and the embedded CA, exit {exits.HELD}"),
    (("-h", "--help"), None, f"show this help, exit {exits.HELD}"),
)


def help_text() -> str:
    return command_line.help_text(USAGE, DESCRIPTION, POSITIONALS, OPTIONS, EPILOG)


def parse(argv: Sequence[str], environ: Mapping[str, str] = os.environ) -> Settings:
    """Settings from the command line, falling back to the environment, then defaults.

    ``--help`` writes the help on stdout and raises ``HelpShown``: the run is over.
    """
    try:
        words = command_line.read(argv, OPTIONS, len(POSITIONALS))
    except UsageError as error:
        raise UsageError(f"{error} (see --help)") from None
    if command_line.HELP in words.flags:
        sys.stdout.write(help_text())
        raise HelpShown
    given = words.values.get
    flags = words.flags

    def setting(key: str, variable: str) -> str | None:
        value = given(key)
        if value is not None:
            return value
        return environ.get(variable) or None

    server_text, explicit_id = _positionals(words.positionals, environ, flags)
    try:
        source = client_id.check_source(
            setting("client_id_from", "CARAMEL_CLIENT_ID_FROM") or "auto"
        )
    except ClientIdError as error:
        raise UsageError(str(error)) from None
    ca_text = setting("ca_cert", "CARAMEL_CA_CERT")
    server = parse_server(server_text) if server_text is not None else None
    return Settings(
        server=server,
        client_id=explicit_id,
        client_id_from=source,
        file=Path(setting("file", "CARAMEL_FILE") or DEFAULT_FILE),
        ca_cert=Path(ca_text) if ca_text else None,
        ownership=Ownership(
            _mode(setting("mode", "CARAMEL_MODE")),
            *_owner(setting("owner", "CARAMEL_OWNER")),
        ),
        key_bits=_key_bits(given("key_bits")),
        timeout=_timeout(setting("timeout", "CARAMEL_TIMEOUT")),
        print_client_id="print_client_id" in flags,
        verbose="verbose" in flags,
        syslog="syslog" in flags,
        show_version="version" in flags,
        identity_root=Path(environ.get("CARAMEL_IDENTITY_ROOT") or "/"),
        wait=_flag_or_variable(flags, "wait", environ, "CARAMEL_WAIT"),
        wait_limit=_seconds(setting("wait_limit", "CARAMEL_WAIT_LIMIT"), "--wait-limit"),
        wait_interval=_wait_interval(setting("wait_interval", "CARAMEL_WAIT_INTERVAL")),
        status_line="status" in flags,
        print_ca="print_ca" in flags,
        print_sbom="sbom" in flags,
        runtime_dir=_runtime_dir(setting("runtime_dir", "CARAMEL_RUNTIME_DIR"), environ),
        check_now=_flag_or_variable(flags, "check_now", environ, "CARAMEL_CHECK_NOW"),
        hint_limit=_hint_limit(given("hint_limit")),
        proxy=_proxy(given("proxy"), environ, server),
        key_store=_key_store(setting("key_store", "CARAMEL_KEY_STORE")),
        tpm=_tcti(setting("tpm", "CARAMEL_TPM")),
    )


def _flag_or_variable(
    flags: set[str], flag: str, environ: Mapping[str, str], variable: str
) -> bool:
    return flag in flags or _flag(environ.get(variable), variable)


def _wait_interval(text: str | None) -> float:
    return _seconds(text, "--wait-interval") or DEFAULT_WAIT_INTERVAL


def _positionals(
    positionals: Sequence[str], environ: Mapping[str, str], flags: set[str]
) -> tuple[str | None, str | None]:
    """SERVER and CLIENT_ID, from the arguments, else the environment; SERVER is required
    unless the run only prints."""
    server_text, explicit_id = [*positionals, None, None][:2]
    if server_text is None:
        server_text = environ.get("CARAMEL_SERVER") or None
    if explicit_id is None:
        explicit_id = environ.get("CARAMEL_CLIENT_ID")
    if explicit_id is not None and explicit_id == "":
        raise UsageError("CLIENT_ID is empty; give an id or leave it out entirely")
    printing = bool(flags & {"print_client_id", "version", "print_ca", "sbom"})
    if server_text is None and not printing:
        raise UsageError("SERVER is required (argument or CARAMEL_SERVER; see --help)")
    return server_text, explicit_id


_PROXY_VARIABLES = ("https_proxy", "HTTPS_PROXY")


def _proxy(
    explicit: str | None, environ: Mapping[str, str], server: ServerAddress | None
) -> Proxy | None:
    """The proxy, if one is configured at all: only then is ``proxy`` imported.

    ``--proxy`` and ``CARAMEL_PROXY`` set but empty mean no proxy, whatever https_proxy
    says (the one other exception to "empty counts as unset").
    """
    if explicit is None:
        explicit = environ.get("CARAMEL_PROXY")
    if server is None or (explicit is None and not any(map(environ.get, _PROXY_VARIABLES))):
        return None
    from caramel_embedded import proxy

    return proxy.choose(explicit, environ, server.host)


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


def _runtime_dir(text: str | None, environ: Mapping[str, str]) -> Path:
    """The option, else systemd's $RUNTIME_DIRECTORY (its first entry when it names several,
    ``:`` between them), else /run/caramel-embedded."""
    if text:
        return Path(text)
    first = (environ.get("RUNTIME_DIRECTORY") or "").split(":")[0]
    return Path(first) if first else DEFAULT_RUNTIME_DIR


def _hint_limit(text: str | None) -> int:
    """Whole seconds, 0 (never follow a hint) to a year."""
    if text is None:
        return DEFAULT_HINT_LIMIT
    if not text.isascii() or not text.isdigit() or len(text) > 9 or int(text) > MAX_HINT_LIMIT:
        raise UsageError(
            f"--hint-limit {text!r}: expected whole seconds, 0 (never) to {MAX_HINT_LIMIT}"
        )
    return int(text)


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
        return DEFAULT_KEY_BITS
    if not text.isdigit() or int(text) not in KEY_SIZES:
        raise UsageError(f"--key-bits {text!r}: expected {key_sizes_text()}")
    return int(text)


def _key_store(text: str | None) -> str:
    if text is None:
        return "file"
    if text not in KEY_STORES:
        raise UsageError(f"--key-store {text!r}: expected {' or '.join(KEY_STORES)}")
    return text


def _tcti(text: str | None) -> str:
    """A TCTI string as the TSS reads it: ``NAME`` or ``NAME:CONFIG``, one line."""
    if text is None:
        return DEFAULT_TPM
    name = text.partition(":")[0]
    if not name or not name.replace("-", "").isalnum() or not text.isprintable():
        raise UsageError(
            f"--tpm {text!r}: expected a TCTI such as device:/dev/tpmrm0 or "
            "swtpm:host=127.0.0.1,port=2321"
        )
    return text


def _timeout(text: str | None) -> float:
    if text is None:
        return DEFAULT_TIMEOUT
    try:
        seconds = float(text)
    except ValueError:
        seconds = -1.0
    if not 0 < seconds <= MAX_TIMEOUT:
        raise UsageError(
            f"--timeout {text!r}: expected seconds, more than 0, at most {MAX_TIMEOUT:g}"
        )
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
