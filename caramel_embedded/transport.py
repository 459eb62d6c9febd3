"""HTTPS to the Caramel server: urllib3, our CA only, one deadline, capped reads.

Trust is the CA certificate alone (never the system store), the host name is checked, and
TLS 1.2 is the floor. The installed certificate is shown as the TLS client certificate while
it is valid; a server that refuses the handshake with it (a TLS alert, a dropped
connection, or nginx's 400 for a certificate it will not take) is asked once more without.
Redirects are never followed and ``Retry-After`` is never slept on: the caller decides when
to try again. ``--timeout`` bounds all of it together (the name's lookup, every address
tried, handshake, reads and the POST), enforced by a real-time interval timer so that a
server trickling one byte a second cannot stretch an invocation. ``reach`` looks the name
up and picks the address; urllib3 still speaks to the name (SNI, host name check, Host).
"""

from __future__ import annotations

import os
import socket
import ssl
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import urllib3
from urllib3 import exceptions as urllib3_errors
from urllib3.connection import HTTPSConnection

from caramel_embedded import reach
from caramel_embedded.deadline import Deadline, DeadlineExpired
from caramel_embedded.errors import (
    NetworkError,
    TLSError,
    UnusableKeyError,
)
from caramel_embedded.server_address import ServerAddress
from caramel_embedded.trust import TrustAnchor
from caramel_embedded.version import __version__
from caramel_embedded.wire import RequestPlan, ServerAnswer

if TYPE_CHECKING:
    from urllib3 import BaseHTTPResponse

    from caramel_embedded.proxy import Proxy

BODY_LIMIT = 64 * 1024
_NO_CONNECT_LIMIT = 24 * 3600.0  # without a connect timeout, only the deadline's alarm


class _HandshakeRefused(Exception):
    """The server would not go on with our client certificate."""


def user_agent(client_id: str) -> str:
    return f"caramel-embedded/{__version__} (client-id={client_id})"


def tls_context(
    anchor: TrustAnchor, client_pem: bytes | None, held_in: Path | None = None
) -> ssl.SSLContext:
    """Verify against the CA(s) only; optionally present a key and certificate.

    ``client_pem`` is the key and the certificate as PEM, composed by the caller (this
    module knows nothing of the held state). ``ssl`` loads a client certificate only from
    a file: it is handed one that lives in memory (``memfd_create``, opened through /proc),
    so nothing is written anywhere and the combined file is not read a second time. Where
    /proc is not mounted (a chroot, early boot), ``held_in`` names a file that already
    holds them (the command's locked combined file); the library has none, and says so. A
    key and certificate that do not load together are the held state's fault, not the
    network's: ``UnusableKeyError``.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_verify_locations(cadata=anchor.pem.decode("ascii"))
    if client_pem is not None:
        try:
            _load_client_certificate(context, client_pem, held_in)
        except ssl.SSLError as error:
            raise UnusableKeyError(
                f"the key and certificate do not load together ({error.reason or error})"
            ) from None
    return context


def _load_client_certificate(
    context: ssl.SSLContext, client_pem: bytes, held_in: Path | None
) -> None:
    descriptor = os.memfd_create("caramel-client-certificate", os.MFD_CLOEXEC)
    try:
        os.write(descriptor, client_pem)
        context.load_cert_chain(f"/proc/self/fd/{descriptor}")
    except FileNotFoundError:
        if held_in is None:
            raise NetworkError(
                "cannot hand the client certificate to TLS: /proc is not mounted"
            ) from None
        context.load_cert_chain(str(held_in))
    finally:
        os.close(descriptor)


class CaramelServer:
    """The protocol's two requests, over at most two pools (with and without our cert)."""

    def __init__(
        self,
        address: ServerAddress,
        anchor: TrustAnchor,
        client_id: str,
        deadline: Deadline,
        progress: Callable[[str], None],
        *,
        proxy: Proxy | None = None,
        held_in: Path | None = None,
    ) -> None:
        self.address = address
        self._dialer = _Dialer(address, anchor, deadline, progress, proxy=proxy, held_in=held_in)
        self._progress = progress
        self._headers = {"User-Agent": user_agent(client_id)}
        self._pool: urllib3.HTTPSConnectionPool | None = None

    def get_certificate(self, plan: RequestPlan, client_pem: bytes | None) -> ServerAnswer:
        """``GET /<sha256>``, showing ``client_pem`` as ``plan`` says, else (or if refused)
        without."""
        headers = dict(self._headers)
        if plan.if_modified_since is not None:
            headers["If-Modified-Since"] = plan.if_modified_since
        path = self.address.path(plan.request_sha256)
        if plan.present_client_certificate:
            self._pool = self._dialer.pool(client_pem)
            try:
                answer = _exchange(self._dialer, self._pool, "GET", path, headers, refusable=True)
            except _HandshakeRefused as refusal:
                self._progress(
                    f"server refused our client certificate ({refusal}); again without it"
                )
            else:
                if answer.status != 400:
                    return answer
                self._progress("server answered 400 to our client certificate; again without it")
            self._pool.close()
        self._pool = self._dialer.pool(None)
        return _exchange(self._dialer, self._pool, "GET", path, headers)

    def post_request(self, request_sha256: str, request_pem: bytes) -> ServerAnswer:
        """``POST /<sha256>`` with the request's exact PEM bytes."""
        if self._pool is None:
            self._pool = self._dialer.pool(None)
        headers = {**self._headers, "Content-Type": "application/pkcs10"}
        path = self.address.path(request_sha256)
        return _exchange(self._dialer, self._pool, "POST", path, headers, body=request_pem)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()


class _Dialer:
    """The pools to the server, all within one deadline: the name looked up once, each
    pool's TLS context made for it."""

    def __init__(
        self,
        address: ServerAddress,
        anchor: TrustAnchor,
        deadline: Deadline,
        progress: Callable[[str], None],
        *,
        proxy: Proxy | None,
        held_in: Path | None,  # where the held key and certificate are, without /proc
    ) -> None:
        self.address = address
        self._anchor = anchor
        self.deadline = deadline
        self._progress = progress
        self.proxy = proxy
        self._held_in = held_in
        self._addresses: list[reach.Address] | None = None

    def pool(self, client_pem: bytes | None) -> urllib3.HTTPSConnectionPool:
        return _Pool(
            self.address.host,
            self.address.port,
            ssl_context=tls_context(self._anchor, client_pem, self._held_in),
            maxsize=1,
            retries=False,
            addresses=self._looked_up(),
            deadline=self.deadline,
            tunnel_proxy=self.proxy,
        )

    def _looked_up(self) -> list[reach.Address]:
        """The addresses to connect to, the server's or its proxy's: looked up once, and
        charged to the deadline."""
        if self._addresses is None:
            via = self.proxy if self.proxy is not None else self.address
            host, port, seconds = via.host, via.port, self.deadline.seconds
            if self.proxy is not None:
                self._progress(f"through the proxy {self.proxy}")
            try:
                with self.deadline.enforced() as left:
                    self._addresses = reach.resolve(host, port, left)
            except (reach.LookupTimeout, DeadlineExpired):
                raise DeadlineExpired(
                    f"no answer from the name server for {host} within {seconds:g} s"
                ) from None
            except OSError as error:
                raise NetworkError(f"cannot resolve {host}: {_reason(error)}") from None
        return self._addresses


def _exchange(
    dialer: _Dialer,
    pool: urllib3.HTTPSConnectionPool,
    method: str,
    path: str,
    headers: dict[str, str],
    *,
    body: bytes | None = None,
    refusable: bool = False,
) -> ServerAnswer:
    """One request and its answer within the deadline, urllib3's errors told in ours;
    ``refusable``: a failed handshake is ``_HandshakeRefused`` (our client certificate may
    be the cause)."""
    address, proxy, deadline = dialer.address, dialer.proxy, dialer.deadline
    try:
        with deadline.enforced() as left:
            response = _send(pool, method, path, headers=headers, body=body, left=left)
            return _read_answer(response)
    except (urllib3_errors.SSLError, urllib3_errors.ProtocolError) as error:
        if refusable:
            raise _HandshakeRefused(_reason(error)) from None
        raise _network_error(f"{address}: {_reason(error)}", error) from None
    except urllib3_errors.NewConnectionError as error:  # before TimeoutError: a subclass
        via = f" through the proxy {proxy}" if proxy is not None else ""
        raise NetworkError(f"cannot connect to {address}{via}: {_reason(error)}") from None
    except urllib3_errors.TimeoutError:
        raise deadline.expired() from None
    except (urllib3_errors.HTTPError, OSError) as error:
        raise _network_error(f"{address}: {_reason(error)}", error) from None


def _send(
    pool: urllib3.HTTPSConnectionPool,
    method: str,
    path: str,
    *,
    headers: dict[str, str],
    body: bytes | None,
    left: float,
) -> BaseHTTPResponse:
    """urllib3 told to do nothing on its own: no redirect, no retry, no preloaded body."""
    return pool.urlopen(
        method,
        path,
        body=body,
        headers=headers,
        redirect=False,
        retries=False,
        preload_content=False,
        assert_same_host=False,
        timeout=urllib3.Timeout(connect=left, read=left),
    )


class _AddressedConnection(HTTPSConnection):
    """urllib3's connection to the server's name, over a socket that ``reach`` connected.

    Only the socket is ours: SNI, the host name check and the Host header stay urllib3's,
    all on the name. urllib3's own connect would look the name up again, in the C library,
    where the deadline cannot stop it, and give the first address the whole timeout.
    With a proxy, the socket is connected to the proxy and made a tunnel to the server
    (``CONNECT``) before urllib3 starts TLS on it: TLS, our CA and our client certificate
    stay end to end with the server, and the tunnel is inside the same deadline.
    """

    def __init__(
        self,
        *args: Any,
        addresses: Sequence[reach.Address],
        deadline: Deadline,
        tunnel_proxy: Proxy | None = None,  # not urllib3's own "proxy" (a forwarding one)
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._addresses = addresses
        self._deadline = deadline
        self._through = tunnel_proxy

    def _new_conn(self) -> socket.socket:
        timeout = self.timeout if isinstance(self.timeout, int | float) else _NO_CONNECT_LIMIT
        try:
            connection = reach.connect_first(self._addresses, timeout, self.socket_options or ())
            self._deadline.watch(connection)
            if self._through is not None:
                self._tunnel_through(connection)
            return connection
        except TimeoutError as error:
            raise urllib3_errors.ConnectTimeoutError(
                self, f"connection to {self.host} timed out ({timeout:g} s)"
            ) from error
        except OSError as error:
            raise urllib3_errors.NewConnectionError(
                self, f"Failed to establish a new connection: {error}"
            ) from error

    def _tunnel_through(self, connection: socket.socket) -> None:
        from caramel_embedded import proxy

        assert self._through is not None
        try:
            proxy.open_tunnel(connection, self._through, self.host, self.port)
        except BaseException:
            connection.close()
            raise


class _Pool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _AddressedConnection


def _network_error(message: str, error: BaseException) -> NetworkError:
    """A TLSError when TLS failed (anywhere in the error's chain), else a NetworkError."""
    return TLSError(message) if _is_tls(error) else NetworkError(message)


def _is_tls(error: BaseException) -> bool:
    return any(
        isinstance(cause, ssl.SSLError | urllib3_errors.SSLError) for cause in _causes(error)
    )


def _read_answer(response: BaseHTTPResponse) -> ServerAnswer:
    try:
        declared = int(response.headers.get("Content-Length", "0") or "0")
    except ValueError:
        declared = 0
    if declared > BODY_LIMIT:
        response.close()
        raise NetworkError(f"server answer of {declared} bytes exceeds {BODY_LIMIT}")
    body = response.read(BODY_LIMIT + 1)
    if len(body) > BODY_LIMIT:
        response.close()
        raise NetworkError(f"server answer exceeds {BODY_LIMIT} bytes")
    response.release_conn()
    headers = {name.lower(): value for name, value in response.headers.items()}
    if "cache-control" in headers:  # a list field: all of its lines count (``hint``)
        headers["cache-control"] = ", ".join(response.headers.getlist("cache-control"))
    return ServerAnswer(response.status, response.reason or "", headers, body)


def _reason(error: BaseException) -> str:
    """The innermost useful words of a urllib3 error, on one line."""
    for cause in _causes(error):
        if isinstance(cause, ssl.SSLCertVerificationError):
            return f"TLS: server certificate not trusted: {cause.verify_message}"
        if isinstance(cause, ssl.SSLError):
            return f"TLS: {cause.reason or cause}"
        if isinstance(cause, OSError) and cause.strerror:
            return cause.strerror
    return " ".join(str(error).split())[:200]


def _causes(error: BaseException) -> Iterator[BaseException]:
    """The error, then what caused it, as urllib3 nests them (at most ten deep)."""
    cause: BaseException | None = error
    for _ in range(10):
        if cause is None:
            return
        yield cause
        cause = cause.__cause__ or cause.__context__ or _inner(cause)


def _inner(error: BaseException) -> BaseException | None:
    for attribute in ("reason", "original_error"):
        inner = getattr(error, attribute, None)
        if isinstance(inner, BaseException) and inner is not error:
            return inner
    if error.args and isinstance(error.args[-1], BaseException):
        return error.args[-1]
    return None
