"""What tpm2 mode costs: the provider's libraries on disk, each TPM step, and the command.

    .venv/bin/python bench/tpm_steps.py [--runs N]       (also the end of `make bench`)

Figures, never asserts (docs/tpm.md holds them with their date). Against a swtpm of its
own on loopback (testbed/swtpm.py), so the times are a software TPM's, emulated figures
with no goal: a real chip makes an RSA key in seconds and signs in tens to hundreds of
milliseconds. The bytes are those of the tpm2-openssl module and of every libtss2 library
it needs (``ldd``), plus the TCTI for a device that the TCTI loader opens at run time:
what a board adds for tpm2 mode. The command (the package, ``python -m
caramel_embedded``) runs against the tests' fake signer, file mode and tpm2 mode in turns
(the order alternating per round): a first run (a new key, its request posted) and the
unchanged path (the installed certificate answered again).
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed import swtpm  # noqa: E402
from testbed.ca_factory import make_authority  # noqa: E402
from tests import fake_signer  # noqa: E402

IMPORT = "import ssl, time, caramel_embedded.errors; t = time.perf_counter(); "
IMPORT += "from caramel_embedded import tpm; "
IMPORT += "print(time.perf_counter() - t)"


def provider_module() -> Path:
    """Where the libcrypto of this Python looks for the tpm2 provider."""
    found = subprocess.run(
        ["openssl", "version", "-m"], capture_output=True, text=True, check=True
    ).stdout  # MODULESDIR: "/usr/lib/x86_64-linux-gnu/ossl-modules"
    return Path(found.split('"')[1]) / "tpm2.so"


def library_bytes(module: Path) -> dict[str, int]:
    """The module and the libtss2 libraries it loads, with the device TCTI, in bytes."""
    listed = subprocess.run(["ldd", str(module)], capture_output=True, text=True, check=True)
    paths = [Path(line.split("=>")[1].split("(")[0].strip())
             for line in listed.stdout.splitlines() if "libtss2" in line]  # fmt: skip
    device = paths[0].with_name("libtss2-tcti-device.so.0") if paths else None
    everything = [module, *paths, *([device] if device and device.exists() else [])]
    return {path.name: path.resolve().stat().st_size for path in everything}


def step_times(tcti: str, runs: int) -> dict[str, list[float]]:
    from caramel_embedded import tpm

    times: dict[str, list[float]] = {"open": [], "keygen": [], "load": [], "sign": []}
    for _ in range(runs):
        started = time.perf_counter()
        session = tpm.TPM(tcti)
        opened = time.perf_counter()
        made = session.generate_rsa(2048)
        generated = time.perf_counter()
        made.close()
        loaded_at = time.perf_counter()
        loaded = session.load(made.blob_pem)
        loaded_end = time.perf_counter()
        loaded.sign_sha256(b"x" * 400)  # about a request's to-be-signed part
        signed = time.perf_counter()
        loaded.close()
        session.close()
        times["open"].append(opened - started)
        times["keygen"].append(generated - opened)
        times["load"].append(loaded_end - loaded_at)
        times["sign"].append(signed - loaded_end)
    return times


def import_times(runs: int) -> list[float]:
    command = [sys.executable, "-c", IMPORT]
    return [
        float(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
        for _ in range(runs)
    ]


def command_times(tcti: str, runs: int, directory: Path) -> dict[str, list[float]]:
    """Wall times of the command's first run and unchanged path, per key store."""
    authority = make_authority()
    ca = authority.write(directory / "ca.pem")
    (directory / "tls").mkdir()
    times: dict[str, list[float]] = {}
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log in the figures
    with fake_signer.serving(authority, directory / "tls") as signer:
        for round_number in range(runs):
            stores = ("file", "tpm2") if round_number % 2 else ("tpm2", "file")
            for store in stores:
                combined = directory / store / f"{round_number}.pem"
                command = [sys.executable, "-m", "caramel_embedded", signer.url,
                           f"bench-{store}-{round_number}", "--file", str(combined),
                           "--ca-cert", str(ca), "--key-store", store, "--tpm", tcti]  # fmt: skip
                first = _timed(command, 69)
                signer.sign(hashlib.sha256(_request_pem(combined)).hexdigest())
                _timed(command, 0)  # installs the certificate
                times.setdefault(f"{store} first run", []).append(first)
                times.setdefault(f"{store} unchanged", []).append(_timed(command, 0))
    return times


def _timed(command: list[str], expected: int) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != expected:
        raise SystemExit(f"{command}: exit {done.returncode}: {done.stderr}")
    return time.perf_counter() - started


def _request_pem(combined: Path) -> bytes:
    from caramel_embedded import pem

    (request,) = [
        b for b in pem.decode_all(combined.read_bytes()) if b.label == "CERTIFICATE REQUEST"
    ]
    return pem.encode(request.label, request.der)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    runs = parser.parse_args().runs
    sizes = library_bytes(provider_module())
    for name, size in sizes.items():
        print(f"{name:32} {size:>10,} bytes")
    print(f"{'together':32} {sum(sizes.values()):>10,} bytes")
    median = statistics.median(import_times(runs))
    print(f"import ctypes + caramel_embedded.tpm  median {median * 1e3:7.1f} ms")
    with tempfile.TemporaryDirectory() as directory, swtpm.running(Path(directory)) as tpm:
        for step, values in step_times(tpm.tcti, runs).items():
            print(f"{step:37} median {statistics.median(values) * 1e3:7.1f} ms (swtpm)")
        for name, values in command_times(tpm.tcti, runs, Path(directory)).items():
            print(f"command, {name:28} median {statistics.median(values) * 1e3:7.1f} ms")


if __name__ == "__main__":
    main()
