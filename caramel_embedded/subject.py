"""The one rule for a request's subject: the CA's, with its CN set to the client id.

Caramel accepts a request whose C, ST, L and O equal its CA's, in the CA's order; the CN
names the device. The rule is applied to two representations: cryptography's names when a
request is made (``pki``, keeping the CA's string types, so the bytes are what OpenSSL
would make), and the DER reader's when the lean path checks that the held request still
names this device under this CA (``decision``). Both call this function.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

Attribute = TypeVar("Attribute")


def request_subject(
    ca_subject: Iterable[Sequence[Attribute]],
    client_id: str,
    *,
    is_common_name: Callable[[Attribute], bool],
    common_name: Callable[[str], Attribute],
) -> list[list[Attribute]]:
    """The CA's relative distinguished names, in order, each CN replaced by the client id;
    a CN appended when the CA has none."""
    rdns = [
        [common_name(client_id) if is_common_name(attribute) else attribute for attribute in rdn]
        for rdn in ca_subject
    ]
    if not any(is_common_name(attribute) for rdn in ca_subject for attribute in rdn):
        rdns.append([common_name(client_id)])
    return rdns
