"""The server's answers: the bytes of an HTTP answer, through urllib3 and ``transport``'s
reading, to the decision and the check of a certificate sent.

Contract, for any bytes the server may send (status line, headers, body):
- reading the answer (urllib3's response, ``transport._read_answer``) gives an answer or
  fails with what ``transport._exchange`` turns into ``NetworkError`` (``NetworkError``
  itself, urllib3's ``HTTPError``, ``OSError``, http.client's ``HTTPException``, which
  urllib3's pool wraps), and never keeps more than 64 KiB of body;
- the decisions on the answer (``after_get``, with a certificate installed or not, and
  ``after_post``) always decide, never raise;
- a certificate to install is checked (``pki.check_issued_certificate``) to the end or
  refused with ``CertificateCheckError``, nothing else.
"""

from __future__ import annotations

import datetime as dt
import http.client
import io
from functools import partial

from urllib3 import exceptions as urllib3_errors
from urllib3.connection import HTTPConnection

from caramel_embedded import decision, pki, state, transport
from caramel_embedded.errors import CertificateCheckError, NetworkError
from caramel_embedded.wire import ServerAnswer
from fuzz.contract import Finding, outcome
from fuzz.identity import CLIENT_ID, identity

_DEVICE = identity()
_NOW = dt.datetime.now(dt.UTC)
_HELD = [
    state.parse(state.compose(_DEVICE.key_der, _DEVICE.request_der), 0),
    state.parse(
        state.compose(_DEVICE.key_der, _DEVICE.request_der, _DEVICE.certificate_der),
        int(_NOW.timestamp()) - 3600,
    ),
]
_NETWORK = (NetworkError, urllib3_errors.HTTPError, OSError, http.client.HTTPException)


class AnsweringSocket:
    """A server that answers ``reply`` to whatever it is sent."""

    def __init__(self, reply: bytes) -> None:
        self._reply = reply

    def sendall(self, data: bytes) -> None:
        pass

    def makefile(self, mode: str) -> io.BytesIO:
        return io.BytesIO(self._reply)

    def settimeout(self, timeout: float | None) -> None:
        pass

    def close(self) -> None:
        pass


def check(data: bytes) -> None:
    answer = outcome(lambda: _answer(data), _NETWORK)
    if not isinstance(answer, ServerAnswer):
        return
    if len(answer.body) > transport.BODY_LIMIT:
        raise Finding(f"kept a body of {len(answer.body)} bytes")
    for held in _HELD:
        assert isinstance(held, state.LocalState)
        plan = decision.plan_request(held, _NOW)
        action = decision.after_get(held, plan, answer)
        if isinstance(action, decision.Install):
            check_issued = partial(
                pki.check_issued_certificate,
                action.certificate_der,
                [_DEVICE.ca_der],
                held.key_der,
                CLIENT_ID,
                _NOW,
            )
            outcome(check_issued, (CertificateCheckError,))
    decision.after_post(answer)


def _answer(data: bytes) -> ServerAnswer:
    connection = HTTPConnection("caramel.test", 443)
    connection.sock = AnsweringSocket(data)
    connection.request("GET", "/" + "0" * 64, preload_content=False)
    return transport._read_answer(connection.getresponse())
