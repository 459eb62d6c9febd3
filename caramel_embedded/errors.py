"""The exception family: one class per meaning, each told to the caller by a face (the
command turns it into its exit status, the library raises it).

Every message is the whole story for a device log: what was wrong and, where it helps,
what to do. The CLI prints ``caramel-embedded: <message>`` and nothing else.
"""

from __future__ import annotations

from typing import Any


class HelpShown(Exception):  # not a CaramelError: nothing failed
    """``--help`` was asked for and written: the invocation is over, as asked."""


class CaramelError(Exception):
    """Base of every error the client reports; the invocation ends in an error.

    ``credentials``: set by the library when the failed call made a new key and kept it
    with its request before posting (the post may have reached the server): the caller
    keeps these instead of what it passed in. None otherwise.
    """

    credentials: Any = None


class UsageError(CaramelError):
    """A bad argument, option or environment variable."""


class ClientIdError(CaramelError):
    """No valid client id could be resolved."""


class CACertificateError(CaramelError):
    """The CA certificate is missing, unreadable or not a certificate."""


class ClockNotSetError(CaramelError):
    """The system clock is earlier than the CA certificate's notBefore."""


class CombinedFileError(CaramelError):
    """The combined key + certificate file cannot be used (a directory, a symlink, I/O)."""


class UnusableKeyError(CaramelError):
    """The held key, or the key and certificate together, cannot be used (a damaged file)."""


class KeyStoreMismatchError(CaramelError):
    """The combined file holds a key of the other kind than ``--key-store`` asks for (a
    file key in tpm2 mode, a TPM key in file mode): refused, never migrated nor lost."""


class TPMError(CaramelError):
    """The TPM of tpm2 mode is absent, unreachable, in dictionary-attack lockout, or
    refused an operation (the message says which)."""


class LockHeldError(CaramelError):
    """Another invocation holds the lock on the combined file: the command says "locked",
    not "error"."""


class NetworkError(CaramelError):
    """The server (or the proxy) could not be reached, TLS failed, or the deadline passed."""


class TLSError(NetworkError):
    """The TLS handshake or session with the server failed (untrusted certificate, wrong
    name, an alert, a protocol error): told apart from a network that does not carry."""


class ServerAnswerError(CaramelError):
    """The server answered something the protocol does not allow here."""


class CertificateCheckError(CaramelError):
    """The server sent a certificate that we must not install."""


class OutputError(CaramelError):
    """stdout cannot be written: what ``--version`` or ``--print-client-id`` prints is lost."""


class InterruptedBySignal(CaramelError):
    """TERM, INT, HUP, QUIT, USR1, USR2 or a stray ALRM: the run ends at once, file old or new."""

    def __init__(self, signal_name: str) -> None:
        super().__init__(f"interrupted by {signal_name}")
        self.signal_name = signal_name


class BillOfMaterialsError(CaramelError):
    """``--sbom`` in a build that carries no software bill of materials (or a damaged one)."""
