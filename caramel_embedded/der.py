"""Just enough DER to read a certificate's validity and names without cryptography.

The unchanged path (a 304, or the installed certificate sent again) runs on every timer
tick of every device, and importing cryptography's X.509 layer costs about 50 ms of a cold
start. That path needs only notBefore, notAfter and the subject's names, which sit at fixed
places in the structure, so a strict reader of those few fields serves it. Anything that
does not parse exactly raises ``DERError``: the full checks stay with cryptography.
"""

from __future__ import annotations

from datetime import UTC, datetime

from caramel_embedded.record import Record

_SEQUENCE = 0x30
_SET = 0x31
_INTEGER = 0x02
_OID = 0x06
_UTC_TIME = 0x17
_GENERALIZED_TIME = 0x18
_EXPLICIT_0 = 0xA0
_EXPLICIT_3 = 0xA3
_BOOLEAN = 0x01
_BIT_STRING = 0x03
_ISSUER_UNIQUE_ID = 0x81
_SUBJECT_UNIQUE_ID = 0x82
_STRING_TAGS = {0x0C, 0x13, 0x14, 0x16, 0x1A, 0x1E}  # UTF8, Printable, T61, IA5, Visible, BMP

_OCTET_STRING = 0x04
OID_COMMON_NAME = bytes([0x55, 0x04, 0x03])
OID_RSA_ENCRYPTION = bytes([0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x01, 0x01])
OID_BASIC_CONSTRAINTS = bytes([0x55, 0x1D, 0x13])


class DERError(ValueError):
    """The bytes are not the DER structure we expected."""


class Attribute(Record):
    """One attribute of a distinguished name: its OID (DER content) and text value."""

    oid: bytes
    value: str


Name = tuple[Attribute, ...]


class CertificateFacts(Record):
    """What the unchanged path needs to know about a certificate."""

    not_before: datetime
    not_after: datetime
    issuer: Name
    subject: Name

    @property
    def common_name(self) -> str | None:
        return common_name(self.subject)

    def is_valid_at(self, moment: datetime) -> bool:
        return self.not_before <= moment < self.not_after


def common_name(name: Name) -> str | None:
    """The last CN of a name, as OpenSSL reports it, or None."""
    values = [attribute.value for attribute in name if attribute.oid == OID_COMMON_NAME]
    return values[-1] if values else None


def certificate_facts(der: bytes) -> CertificateFacts:
    """Validity and names of an X.509 certificate."""
    tbs = _tbs_fields(der)
    issuer, validity, subject = tbs[2], tbs[3], tbs[4]
    times = _children(_expect(validity, _SEQUENCE))
    if len(times) != 2:
        raise DERError("certificate validity is not two times")
    return CertificateFacts(
        not_before=_time(times[0]),
        not_after=_time(times[1]),
        issuer=_name(issuer),
        subject=_name(subject),
    )


def is_ca_certificate(der: bytes) -> bool:
    """Whether the certificate's basicConstraints extension says CA:TRUE.

    A trust anchor must be a CA: a leaf (the server's own certificate, say) given as the CA
    would otherwise become the subject of our request and the issuer we check against.
    No extension, or an extension without the flag, means not a CA (RFC 5280 4.2.1.9).
    """
    certificate, tbs = _certificate(der)
    extensions = [field for field in tbs[6:] if field[0] == _EXPLICIT_3]
    if not extensions:
        return False
    oids = _extensions(extensions[0][1])
    if len(set(oids)) != len(oids):
        raise DERError("an extension given twice")  # cryptography reads none of them then
    if OID_BASIC_CONSTRAINTS in oids:
        # the algorithms named, with the parameters cryptography reads for each
        _known_algorithm(certificate[1], _SIGNATURE_ALGORITHMS)
        _known_algorithm(tbs[1], _SIGNATURE_ALGORITHMS)
        _known_algorithm(_children(tbs[5][1])[0], _KEY_ALGORITHMS)
    for extension in _children(_only(extensions[0][1], _SEQUENCE)):
        fields = _children(_expect(extension, _SEQUENCE))
        if not fields or fields[0] != (_OID, OID_BASIC_CONSTRAINTS):
            continue
        value = _expect(fields[-1], _OCTET_STRING)
        constraints = _children(_only(value, _SEQUENCE))
        is_ca = bool(constraints) and constraints[0][0] == _BOOLEAN  # absent: DEFAULT FALSE
        if is_ca and constraints[0][1] != b"\xff":  # DER: TRUE is 0xFF, FALSE is left out
            raise DERError("bad boolean in basicConstraints")
        path_length = constraints[1:] if is_ca else constraints
        if len(path_length) > 1 or (path_length and path_length[0][0] != _INTEGER):
            raise DERError("bad basicConstraints")
        if path_length:
            _integer(path_length[0][1])
            if path_length[0][1][0] & 0x80:
                raise DERError("negative path length in basicConstraints")
        return is_ca
    return False


def request_subject(der: bytes) -> Name:
    """The subject of a PKCS#10 certificate request."""
    request = _only(der, _SEQUENCE)
    info = _children(_first(request, _SEQUENCE))
    if len(info) < 3 or info[0][0] != _INTEGER:
        raise DERError("not a certificate request")
    return _name(info[1])


def check_rsa_pkcs8(der: bytes) -> None:
    """A PKCS#8 PrivateKeyInfo holding an RSA key; the numbers are OpenSSL's to judge."""
    fields = _children(_only(der, _SEQUENCE))
    if len(fields) < 3 or fields[0][0] != _INTEGER or fields[2][0] != _OCTET_STRING:
        raise DERError("private key is not PKCS#8")
    algorithm = _children(_expect(fields[1], _SEQUENCE))
    if not algorithm or algorithm[0] != (_OID, OID_RSA_ENCRYPTION):
        raise DERError("private key is not an RSA key")
    _only(fields[2][1], _SEQUENCE)


def sequence_fields(der: bytes) -> list[tuple[int, bytes]]:
    """(tag, content) of each element of the one SEQUENCE that ``der`` is: for readers of
    other structures (``tpm_blob``) that need no more than that."""
    return _children(_only(der, _SEQUENCE))


# --- the reader ------------------------------------------------------------------------


_TLV = tuple[int, bytes]


def _tbs_fields(der: bytes) -> list[_TLV]:
    """The fields of a certificate's TBSCertificate from the serial number on.

    The whole certificate must have RFC 5280's shape (4.1), down to the algorithms, the
    public key's and the signature's BIT STRINGs and each extension, in DER: a trust
    anchor that cryptography or OpenSSL would refuse must not pass here as a CA (found by
    fuzzing: a certificate with a damaged public key was taken as one).
    """
    return _certificate(der)[1]


def _certificate(der: bytes) -> tuple[list[_TLV], list[_TLV]]:
    """The certificate's three fields, and its TBSCertificate's from the serial number on.

    Nothing is refused here that cryptography reads (an installed certificate that this
    refused would be taken for a damaged file): the checks a CA needs beyond it are
    ``is_ca_certificate``'s.
    """
    certificate = _children(_only(der, _SEQUENCE))
    if len(certificate) != 3 or certificate[0][0] != _SEQUENCE:
        raise DERError("not a certificate")
    _algorithm(certificate[1])
    _bit_string(certificate[2])
    tbs = _children(certificate[0][1])
    if tbs and tbs[0][0] == _EXPLICIT_0:
        if _only(tbs[0][1], _INTEGER) != b"\x02":  # v1 is written by leaving the field out
            raise DERError("unsupported certificate version")
        tbs = tbs[1:]
    if len(tbs) < 6 or [tag for tag, _ in tbs[:6]] != [_INTEGER] + [_SEQUENCE] * 5:
        raise DERError("not a certificate")
    _integer(tbs[0][1])
    _algorithm(tbs[1])
    key = _children(tbs[5][1])
    if len(key) != 2:
        raise DERError("bad public key")
    _algorithm(key[0])
    _bit_string(key[1])
    optional = [tag for tag, _ in tbs[6:]]
    if optional != sorted(set(optional)) or not set(optional) <= set(_OPTIONAL):
        raise DERError("unexpected fields after the public key")
    for tag, content in tbs[6:]:
        if tag == _EXPLICIT_3:
            _extensions(content)
        else:
            _bit_string((tag, content))
    return certificate, tbs


# The optional fields after the public key, each at most once, in this order.
_OPTIONAL = (_ISSUER_UNIQUE_ID, _SUBJECT_UNIQUE_ID, _EXPLICIT_3)


def _extensions(content: bytes) -> list[bytes]:
    """A SEQUENCE of extensions, ``critical`` only when TRUE; their OIDs."""
    oids = []
    for extension in _children(_only(content, _SEQUENCE)):
        fields = _children(_expect(extension, _SEQUENCE))
        if len(fields) not in (2, 3) or fields[0][0] != _OID or fields[-1][0] != _OCTET_STRING:
            raise DERError("bad extension")
        _oid(fields[0][1])
        if len(fields) == 3 and (fields[1][0] != _BOOLEAN or fields[1][1] != b"\xff"):
            raise DERError("bad extension criticality")  # DER leaves FALSE out
        oids.append(fields[0][1])
    return oids


_ABSENT = frozenset({None})
_NULL_OR_ABSENT = frozenset({None, 0x05})
_SIGNATURE_ALGORITHMS = {
    bytes.fromhex("2a864886f70d010105"): _NULL_OR_ABSENT,  # sha1WithRSAEncryption
    bytes.fromhex("2a864886f70d01010b"): _NULL_OR_ABSENT,  # sha256WithRSAEncryption
    bytes.fromhex("2a864886f70d01010c"): _NULL_OR_ABSENT,  # sha384WithRSAEncryption
    bytes.fromhex("2a864886f70d01010d"): _NULL_OR_ABSENT,  # sha512WithRSAEncryption
    bytes.fromhex("2a8648ce3d040302"): _ABSENT,  # ecdsa-with-SHA256
    bytes.fromhex("2a8648ce3d040303"): _ABSENT,  # ecdsa-with-SHA384
    bytes.fromhex("2a8648ce3d040304"): _ABSENT,  # ecdsa-with-SHA512
    bytes.fromhex("2b6570"): _ABSENT,  # Ed25519
}
_KEY_ALGORITHMS = {
    OID_RSA_ENCRYPTION: _NULL_OR_ABSENT,
    bytes.fromhex("2a8648ce3d0201"): frozenset({_OID}),  # id-ecPublicKey, a named curve
    bytes.fromhex("2b6570"): _ABSENT,  # Ed25519
}


def _known_algorithm(element: _TLV, known: dict[bytes, frozenset[int | None]]) -> None:
    """One of the algorithms a CA of ours may name, its parameters as cryptography reads
    them: anything else in a CA is refused (fuzzing found a CA whose signature algorithm
    had parameters that cryptography refuses)."""
    fields = _children(element[1])
    parameters = fields[1] if len(fields) == 2 else None
    allowed = known.get(fields[0][1])
    if allowed is None or (parameters[0] if parameters else None) not in allowed:
        raise DERError("an algorithm a CA certificate cannot name here")
    if parameters is not None and parameters[0] == 0x05 and parameters[1]:
        raise DERError("bad NULL")
    if parameters is not None and parameters[0] == _OID:
        _oid(parameters[1])


def _algorithm(element: _TLV) -> None:
    """An AlgorithmIdentifier: an OID and at most one parameter."""
    fields = _children(_expect(element, _SEQUENCE))
    if not 1 <= len(fields) <= 2 or fields[0][0] != _OID:
        raise DERError("bad algorithm identifier")
    _oid(fields[0][1])


def _bit_string(element: _TLV) -> None:
    content = element[1]
    if element[0] not in (_BIT_STRING, _ISSUER_UNIQUE_ID, _SUBJECT_UNIQUE_ID) or not content:
        raise DERError("bad bit string")
    unused = content[0]
    if unused > 7 or (len(content) == 1 and unused) or content[-1] & ((1 << unused) - 1):
        raise DERError("bad bit string")


def _integer(content: bytes) -> None:
    """Minimal two's complement: no leading 0x00 before a byte < 0x80, nor 0xFF before one
    >= 0x80."""
    if not content:
        raise DERError("bad integer")
    if len(content) > 1 and (content[0], content[1] >> 7) in ((0x00, 0), (0xFF, 1)):
        raise DERError("bad integer")


def _oid(content: bytes) -> None:
    """An object identifier's arcs: base 128, no padding, the last one complete."""
    if not content or content[-1] & 0x80:
        raise DERError("bad object identifier")
    for index, byte in enumerate(content):
        if byte == 0x80 and (index == 0 or not content[index - 1] & 0x80):
            raise DERError("bad object identifier")


def _read(data: bytes, offset: int) -> tuple[int, bytes, int]:
    """(tag, content, offset after) of the element at ``offset``."""
    if offset + 2 > len(data):
        raise DERError("truncated element")
    tag, first = data[offset], data[offset + 1]
    offset += 2
    if tag & 0x1F == 0x1F:
        raise DERError("multi-byte tags are not used here")
    if first < 0x80:
        length = first
    else:
        count = first & 0x7F
        if count == 0 or count > 4 or offset + count > len(data):
            raise DERError("bad length")
        length = int.from_bytes(data[offset : offset + count], "big")
        if length < 0x80 or data[offset] == 0:
            raise DERError("length is not minimal DER")
        offset += count
    end = offset + length
    if end > len(data):
        raise DERError("truncated element")
    return tag, data[offset:end], end


def _children(content: bytes) -> list[_TLV]:
    children: list[_TLV] = []
    offset = 0
    while offset < len(content):
        tag, value, offset = _read(content, offset)
        children.append((tag, value))
    return children


def _only(data: bytes, tag: int) -> bytes:
    found, content, end = _read(data, 0)
    if found != tag or end != len(data):
        raise DERError("unexpected outer structure")
    return content


def _first(content: bytes, tag: int) -> bytes:
    found, value, _ = _read(content, 0)
    if found != tag:
        raise DERError("unexpected inner structure")
    return value


def _expect(element: _TLV, tag: int) -> bytes:
    if element[0] != tag:
        raise DERError(f"expected tag {tag:#x}, found {element[0]:#x}")
    return element[1]


def _name(element: _TLV) -> Name:
    attributes: list[Attribute] = []
    for rdn in _children(_expect(element, _SEQUENCE)):
        for pair in _children(_expect(rdn, _SET)):
            fields = _children(_expect(pair, _SEQUENCE))
            if len(fields) != 2 or fields[0][0] != _OID:
                raise DERError("bad name attribute")
            _oid(fields[0][1])
            attributes.append(Attribute(fields[0][1], _text(fields[1])))
    return tuple(attributes)


def _text(element: _TLV) -> str:
    tag, value = element
    if tag not in _STRING_TAGS:
        raise DERError(f"unexpected string type {tag:#x}")
    try:
        return value.decode("utf-16-be" if tag == 0x1E else "utf-8")
    except UnicodeDecodeError:
        raise DERError("bad string in name") from None


def _time(element: _TLV) -> datetime:
    tag, value = element
    text = value.decode("ascii", "replace")
    if tag == _UTC_TIME and len(text) == 13 and text.endswith("Z"):
        year = int(text[:2]) if text[:2].isdigit() else -1
        text = ("19" if year >= 50 else "20") + text
    elif not (tag == _GENERALIZED_TIME and len(text) == 15 and text.endswith("Z")):
        raise DERError("bad time")
    digits = text[:14]  # non-ASCII bytes were decoded as U+FFFD, which is no digit
    if not digits.isdigit():
        raise DERError("bad time")
    month, day, hour, minute, second = (int(digits[i : i + 2]) for i in range(4, 14, 2))
    try:  # sliced by hand: datetime.strptime would import _strptime on every cold start
        return datetime(int(digits[:4]), month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        raise DERError("bad time") from None
