"""``state``: the combined file's layout (key, [certificate,] request), read without
cryptography.

Contract, for any bytes: ``state.parse`` returns None (empty), a provisioned key or a
state, or raises ``CorruptFileError`` (the file is then set aside); a state, composed
again, reads back as the same state; its certificate's facts are cryptography's where
cryptography reads the certificate.
"""

from __future__ import annotations

from caramel_embedded import state
from fuzz import x509_reference
from fuzz.contract import agree, outcome


def check(data: bytes) -> None:
    held = outcome(lambda: state.parse(data, 0), (state.CorruptFileError,))
    if isinstance(held, state.LocalState):
        composed = state.compose(held.key_der, held.request_der, held.certificate_der)
        agree("state composed and read again", state.parse(composed, 0), held)
        if held.certificate is not None and held.certificate_der is not None:
            reference = x509_reference.facts(held.certificate_der)
            if reference is not None:
                agree("notBefore", held.certificate.not_before, reference.not_before)
                agree("notAfter", held.certificate.not_after, reference.not_after)
                agree("subject", x509_reference.ours(held.certificate.subject), reference.subject)
