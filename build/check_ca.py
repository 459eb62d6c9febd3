"""Check a CA certificate before it is embedded, and write the copy that the build embeds.

    python build/check_ca.py CA_CERT OUTPUT_PEM     (run with the repository on PYTHONPATH)

The certificate is read by the client's own reader (``caramel_embedded.trust.parse``), so
the binary is sure to accept what it carries (the reader refuses a certificate that is not
a CA); the copy is its one canonical PEM block. A certificate that is not a CA, or is
already expired, is refused: a firmware image with it
could never enroll a device, and nobody would learn why until the devices shipped. Prints
the SHA-256 fingerprint (the one ``--version`` shows) on stdout; exit 1 with one line on
stderr otherwise.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path


def check(ca_path: Path, output: Path) -> str:
    """The fingerprints of the CA(s) at ``ca_path`` (comma-separated for a bundle), after
    writing their canonical PEM to output."""
    from caramel_embedded import trust
    from caramel_embedded.errors import CACertificateError

    try:
        anchor = trust.load(ca_path)
    except CACertificateError as error:
        raise SystemExit(f"check_ca.py: {error}") from None
    for ca in anchor.certificates:  # a bundle: each, since an image lives for years
        if datetime.now(UTC) >= ca.facts.not_after:
            ended = f"{ca.facts.not_after:%Y-%m-%d}"
            raise SystemExit(f"check_ca.py: {ca_path}: {ca.subject_text} expired on {ended}")
    output.write_bytes(anchor.pem)
    return anchor.sha256_fingerprint


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__, file=sys.stderr)
        return 2
    print(check(Path(argv[0]), Path(argv[1])))
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
