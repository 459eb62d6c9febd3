"""Can ``ssl`` show a TPM key as the client certificate? A measurement, not a test.

    .venv/bin/python bench/tpm_mtls.py [PROPERTY_QUERY ...]

For each property query (default: none, and the one issue 22's probe used), a swtpm and a
fake signer on loopback (RSA-2048 CA and server certificate, a client certificate asked
for, not required), a device enrolled in tpm2 mode, then ten handshakes from a fresh
interpreter with the tpm2 provider and the default provider loaded into ``ssl``'s own
(default) library context and the query set as its default properties: how many succeed,
their median time, whether the server saw the client certificate, and what the TPM holds
afterwards. docs/tpm.md says what the figures mean for tpm2 mode.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed import swtpm  # noqa: E402
from testbed.ca_factory import make_authority  # noqa: E402
from tests import fake_signer  # noqa: E402

QUERIES = ("", "?provider=tpm2,tpm2.digest!=yes,tpm2.rand!=yes,tpm2.cipher!=yes")
HANDSHAKES = r"""
import ctypes, os, ssl, statistics, sys, time, urllib3
query, ca, combined, port = sys.argv[1].encode(), sys.argv[2], sys.argv[3], int(sys.argv[4])
crypto = ctypes.CDLL("libcrypto.so.3", mode=os.RTLD_NOLOAD)
crypto.OSSL_PROVIDER_load.restype = ctypes.c_void_p
crypto.OSSL_PROVIDER_load.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
crypto.EVP_set_default_properties.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
assert crypto.OSSL_PROVIDER_load(None, b"tpm2") and crypto.OSSL_PROVIDER_load(None, b"default")
assert crypto.EVP_set_default_properties(None, query) == 1
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.load_verify_locations(ca)
context.load_cert_chain(combined)
times, failure = [], ""
for _ in range(10):
    started = time.perf_counter()
    pool = urllib3.HTTPSConnectionPool("127.0.0.1", port, ssl_context=context, retries=False)
    try:
        pool.request("GET", "/0")
    except Exception as error:
        failure = str(error)[:160]
        break
    finally:
        pool.close()
    times.append(time.perf_counter() - started)
median = f"{statistics.median(times) * 1e3:.1f} ms" if times else "-"
print(f"handshakes {len(times)}/10, median {median}" + (f"; failed: {failure}" if failure else ""))
"""


def measure(query: str, directory: Path) -> None:
    authority = make_authority()
    ca = authority.write(directory / "ca.pem")
    (directory / "tls").mkdir()
    with (
        fake_signer.serving(authority, directory / "tls") as signer,
        swtpm.running(directory / "tpm") as tpm,
    ):
        combined = directory / "client.pem"
        command = [sys.executable, "-m", "caramel_embedded", signer.url, "device-1",
                   "--file", str(combined), "--ca-cert", str(ca),
                   "--key-store", "tpm2", "--tpm", tpm.tcti]  # fmt: skip
        subprocess.run(command, capture_output=True, check=False)
        signer.sign()
        subprocess.run(command, capture_output=True, check=False)
        env = {**os.environ, "TPM2OPENSSL_TCTI": tpm.tcti, "TSS2_LOG": "all+NONE"}
        result = subprocess.run(
            [sys.executable, "-c", HANDSHAKES, query, str(ca), str(combined), str(signer.port)],
            capture_output=True, text=True, env=env, timeout=300, check=False,
        )  # fmt: skip
        shown = sum(1 for seen in signer.seen[2:] if seen.client_certificate is not None)
        print(f"query {query!r}: {result.stdout.strip() or result.stderr.strip()[-300:]}")
        print(f"  client certificate seen by the server: {shown} times; "
              f"left in the TPM: {swtpm.transient_handles(tpm)}")  # fmt: skip


def main() -> None:
    for query in sys.argv[1:] or QUERIES:
        with tempfile.TemporaryDirectory() as directory:
            measure(query, Path(directory))


if __name__ == "__main__":
    main()
