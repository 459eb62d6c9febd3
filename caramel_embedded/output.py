"""The standard streams, made safe to lose: a closed, full or broken stdout or stderr.

Python ends with a status of its own when its own flush of stdout or stderr fails at
exit, one outside the command's four. So every write to stdout is flushed where it is made (its
failure raised as ``OutputError``, for the command to answer), the streams are flushed
once more before the end (``settle``), and a stream that failed is pointed at /dev/null
so that the interpreter's last flush finds nothing to fail on. Which status follows is
the command's business (``cli``); this module only says what was lost.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
from collections.abc import Iterator
from typing import TextIO, cast

from caramel_embedded.errors import OutputError


class _ClosedStream(io.TextIOBase):
    """Stands in for a standard stream that was closed before the start (Python's None).

    A write to it fails like one to any broken stream (an ``OSError``, not an
    ``AttributeError`` on None), so a closed stream is one more failure handled as such.
    """

    lost = False

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        self.lost = True
        raise OSError(errno.EBADF, "closed")


def stand_in_for_closed_streams() -> None:
    if sys.stdout is None:
        sys.stdout = cast(TextIO, _ClosedStream())
    if sys.stderr is None:
        sys.stderr = cast(TextIO, _ClosedStream())


def write_stdout(text: str) -> None:
    """Write and flush; ``OutputError`` if stdout cannot take it."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except (OSError, ValueError) as error:
        raise OutputError(f"cannot write to stdout: {_why(error)}") from None


@contextlib.contextmanager
def stdout_in_memory() -> Iterator[None]:
    """Collect what the block prints, then write it as ``write_stdout`` does.

    argparse swallows the errors of its own writes (and prints to stderr if stdout is
    closed), so ``--help`` is written into memory first.
    """
    real_stdout, sys.stdout = sys.stdout, io.StringIO()
    try:
        yield
    finally:
        text, sys.stdout = sys.stdout.getvalue(), real_stdout
        if text:
            write_stdout(text)


def settle() -> str | None:
    """Flush stdout and stderr for the last time; why stdout's text was lost, or None.

    A lost stderr changes nothing (it held diagnostics); a lost stdout is the caller's to
    answer, since stdout carried the product.
    """
    lost = _flush_or_discard(sys.stdout)
    _flush_or_discard(sys.stderr)
    return lost


def _flush_or_discard(stream: TextIO) -> str | None:
    """Flush ``stream``; if that fails, drop what it holds and say why.

    Its descriptor is pointed at /dev/null and flushed again, so the interpreter's own flush
    at exit finds nothing to fail on.
    """
    if getattr(stream, "lost", False):
        return "closed"
    try:
        stream.flush()
    except (OSError, ValueError) as error:
        _point_at_dev_null(stream)
        return _why(error)
    return None


def _point_at_dev_null(stream: TextIO) -> None:
    try:
        dev_null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(dev_null, stream.fileno())
        finally:
            os.close(dev_null)
        stream.flush()
    except (OSError, ValueError):  # no /dev/null: let nothing flush this stream at exit
        for name in ("stdout", "stderr"):
            if getattr(sys, name) is stream:
                setattr(sys, name, cast(TextIO, _ClosedStream()))


def _why(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
