"""Start-up of both frozen forms: the idna codec's ASCII fast path, and in the one-file
binary the finder that unpacks deferred native files on their first import.

A module in the PYZ, called by a two-line run-time hook that the spec generates
(``pyi_rth_caramel_startup``): run-time hooks execute in ``__main__``'s namespace, so the
code lives here and leaves nothing behind there.

Why (issue 13; README, "The one-file launcher"): the one-file launcher inflates every file
it carries into ``$TMPDIR`` at every start, and most of those bytes (cryptography's Rust
extension with its own OpenSSL, ``unicodedata``, lib-dynload modules) are never opened on
the unchanged path, which runs at every timer tick. The spec (build/caramel-embedded.spec)
takes them out of the launcher's archive and carries them inside the PYZ, which the
launcher reads in place, as generated modules of a few hundred KiB each (one big module
would be one big bytes object: peak RSS). This hook writes a deferred file into the run's
own extraction directory (``sys._MEIPASS``) the first time something imports the module
that needs it, so the launcher still removes it when the run ends, TERM included.

The hook passes the table of deferred files; the one-dir bundle's is empty (its files are
plain files already).

``unicodedata`` can only be deferred because of the idna fast path: ``ssl`` and
``socket`` pass every host name through the ``idna`` codec, whose module imports
``stringprep`` and ``unicodedata`` at its top although an ASCII name needs neither. The
stand-in encodes ASCII names exactly as CPython 3.11's own ASCII branch does and hands
anything else to the real codec, loaded on first use.

Everything here runs at every start: only ``sys``, ``os`` and ``types`` at module level,
which the frozen interpreter has already imported.
"""

from __future__ import annotations

import os
import sys
from types import ModuleType
from typing import Any

# module name -> the files to write before it is imported, in order: (path under
# sys._MEIPASS, names of the generated modules holding its bytes, in order).
DEFERRED: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {}

_EXIT_STATUS = 127  # the SPEC's status for every error that is not 1 or 69


class DeferredFinder:
    """Finds the deferred modules: writes their files on first import, then hands back its
    own spec (the package directory of a deferred extension does not exist at start, so
    the standard path finder, which caches directory listings, cannot be relied on)."""

    @classmethod
    def find_spec(cls, fullname: str, path: object = None, target: object = None) -> Any:
        files = DEFERRED.get(fullname)
        if files is None:
            return None
        from importlib.machinery import ExtensionFileLoader, ModuleSpec

        root = sys._MEIPASS  # type: ignore[attr-defined]
        for relative, pieces in files:
            _materialize(os.path.join(root, relative), pieces)
        extension = os.path.join(root, files[-1][0])
        spec = ModuleSpec(fullname, ExtensionFileLoader(fullname, extension), origin=extension)
        spec.has_location = True
        return spec

    @classmethod
    def invalidate_caches(cls) -> None:
        """Nothing cached: the table is all there is."""


def _materialize(destination: str, pieces: tuple[str, ...]) -> None:
    """Write one deferred file from its pieces, once per run; on failure (a full or
    read-only $TMPDIR) say so in one line and end the run with 127, through SystemExit so
    that every clean-up on the way (the combined file's) still runs and no
    ``except ImportError`` on the way can take it for a missing optional module."""
    if os.path.exists(destination):
        return
    partial = destination + ".partial"
    try:
        os.makedirs(os.path.dirname(destination), mode=0o700, exist_ok=True)
        descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o700)
        try:
            for piece in pieces:
                __import__(piece)
                data = sys.modules.pop(piece).DATA
                view = memoryview(data)
                while view:
                    view = view[os.write(descriptor, view) :]
                del view, data
        finally:
            os.close(descriptor)
        os.rename(partial, destination)
    except OSError as error:
        try:  # noqa: SIM105 (contextlib is not imported at start, and need not be)
            os.unlink(partial)
        except OSError:
            pass
        tmpdir = os.path.dirname(sys._MEIPASS)  # type: ignore[attr-defined]
        sys.stderr.write(
            f"caramel-embedded: cannot unpack {os.path.basename(destination)} into $TMPDIR "
            f"({tmpdir}): {error.strerror or error}; give it a tmpfs with more room\n"
        )
        sys.stderr.flush()
        raise SystemExit(_EXIT_STATUS) from None


_real_idna: dict[str, ModuleType] = {}  # "module": the real one, once imported
# The public names of CPython 3.11's encodings/idna.py, handed over from the real module.
_IDNA_NAMES = frozenset(
    {
        *("ToASCII", "ToUnicode", "nameprep", "dots", "ace_prefix", "sace_prefix"),
        *("Codec", "IncrementalEncoder", "IncrementalDecoder", "StreamWriter", "StreamReader"),
    }
)


def _real_idna_module() -> ModuleType:
    """The standard library's encodings.idna, imported on first need, beside the stand-in."""
    if not _real_idna:
        stand_in = sys.modules.pop("encodings.idna")
        try:
            __import__("encodings.idna")
            _real_idna["module"] = sys.modules["encodings.idna"]
        finally:
            sys.modules["encodings.idna"] = stand_in
    return _real_idna["module"]


def idna_encode(text: str, errors: str = "strict") -> tuple[bytes, int]:
    """CPython 3.11's idna encoding: its own ASCII branch, verbatim, without its imports."""
    if errors == "strict" and isinstance(text, str) and text.isascii():
        if not text:
            return b"", 0
        result = text.encode("ascii")
        labels = result.split(b".")
        for label in labels[:-1]:
            if not (0 < len(label) < 64):
                raise UnicodeError("label empty or too long")
        if len(labels[-1]) >= 64:
            raise UnicodeError("label too long")
        return result, len(text)
    return _real_idna_module().Codec().encode(text, errors)  # type: ignore[no-any-return]


def _idna_decode(data: bytes, errors: str = "strict") -> tuple[str, int]:
    return _real_idna_module().Codec().decode(data, errors)  # type: ignore[no-any-return]


def _idna_stand_in() -> ModuleType:
    """A module in the place of encodings.idna: the codec entry the encodings package asks
    for, and every other name from the real module on demand (PEP 562)."""
    import codecs

    def lazily(name: str) -> Any:
        def make(*args: Any) -> Any:
            return getattr(_real_idna_module(), name)(*args)

        return make

    def getregentry() -> codecs.CodecInfo:
        return codecs.CodecInfo(
            name="idna",
            encode=idna_encode,
            decode=_idna_decode,  # type: ignore[arg-type]
            incrementalencoder=lazily("IncrementalEncoder"),
            incrementaldecoder=lazily("IncrementalDecoder"),
            streamwriter=lazily("StreamWriter"),
            streamreader=lazily("StreamReader"),
        )

    def __getattr__(name: str) -> Any:
        # Only the real module's own names: the encodings package looks up others that it
        # does not define (__all__, getaliases), and answering those would load it.
        if name not in _IDNA_NAMES:
            raise AttributeError(name)
        return getattr(_real_idna_module(), name)

    module = ModuleType(
        "encodings.idna", "The idna codec, ASCII fast path (build/caramel_startup.py)."
    )
    module.getregentry = getregentry  # type: ignore[attr-defined]
    module.__getattr__ = __getattr__  # type: ignore[method-assign]
    return module


def install(deferred: dict[str, tuple[tuple[str, tuple[str, ...]], ...]]) -> None:
    """What the frozen start runs: the stand-in codec module, and the finder if needed."""
    if "encodings.idna" not in sys.modules:
        sys.modules["encodings.idna"] = _idna_stand_in()
    if deferred:
        DEFERRED.update(deferred)
        sys.meta_path.insert(0, DeferredFinder)
