"""What tpm2 mode costs: the provider's libraries on disk, and each TPM step's time.

    .venv/bin/python bench/tpm_steps.py [--runs N]

Figures, never asserts (docs/tpm.md holds them with their date). Against a swtpm of its
own on loopback (testbed/swtpm.py), so the times are a software TPM's: a real chip makes
an RSA key in seconds and signs in tens to hundreds of milliseconds. The bytes are those
of the tpm2-openssl module and of every libtss2 library it needs (``ldd``), plus the TCTI
for a device that the TCTI loader opens at run time: what a board adds for tpm2 mode.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from testbed import swtpm  # noqa: E402

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


if __name__ == "__main__":
    main()
