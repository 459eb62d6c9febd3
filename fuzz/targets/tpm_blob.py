"""``tpm_blob``: the ``TSS2 PRIVATE KEY`` block of tpm2 mode, read from the combined file.

Contract, for any bytes: ``rsa_public`` returns the public numbers of an RSA key or raises
``BlobError`` (the file is then set aside as damaged), never anything else; numbers it
returns are those of a real key: the modulus exactly ``bits`` long with its top bit set,
an odd exponent above 1.
"""

from __future__ import annotations

from caramel_embedded import tpm_blob
from fuzz.contract import Finding


def check(data: bytes) -> None:
    try:
        public = tpm_blob.rsa_public(data)
    except tpm_blob.BlobError:
        return
    if public.modulus.bit_length() != public.bits or public.bits % 8:
        raise Finding(f"a {public.modulus.bit_length()}-bit modulus said to be {public.bits}")
    if public.exponent < 3 or not public.exponent % 2:
        raise Finding(f"exponent {public.exponent} read as an RSA key's")
