"""``der``: the lean reader of certificates, requests and keys, against pyca/cryptography.

Contract, for any bytes:
- every function of ``der`` returns or raises ``DERError`` (its callers turn that into
  ``CACertificateError``, ``CorruptFileError`` or a refused answer), nothing else;
- where cryptography reads the certificate and ``der`` does too, both find the same
  notBefore, notAfter, issuer, subject and CA flag (``der`` may refuse more: it is strict
  on purpose, and the full checks stay with cryptography);
- no certificate that cryptography refuses is taken as a CA;
- where both read a certificate request, both find the same subject.
"""

from __future__ import annotations

from caramel_embedded import der
from fuzz import x509_reference
from fuzz.contract import Finding, agree, outcome


def check(data: bytes) -> None:
    facts = outcome(lambda: der.certificate_facts(data), (der.DERError,))
    is_ca = outcome(lambda: der.is_ca_certificate(data), (der.DERError,))
    subject = outcome(lambda: der.request_subject(data), (der.DERError,))
    outcome(lambda: der.check_rsa_pkcs8(data), (der.DERError,))
    reference = x509_reference.facts(data)
    if reference is None:
        if is_ca is True and isinstance(facts, der.CertificateFacts):  # as trust takes a CA
            raise Finding("taken as a CA, but cryptography refuses the certificate")
    else:
        if isinstance(facts, der.CertificateFacts):
            agree("notBefore", facts.not_before, reference.not_before)
            agree("notAfter", facts.not_after, reference.not_after)
            agree("issuer", x509_reference.ours(facts.issuer), reference.issuer)
            agree("subject", x509_reference.ours(facts.subject), reference.subject)
        if isinstance(is_ca, bool):
            agree("CA flag", is_ca, reference.is_ca)
    if isinstance(subject, tuple):
        expected = x509_reference.request_subject(data)
        if expected is not None:
            agree("request subject", x509_reference.ours(subject), expected)
