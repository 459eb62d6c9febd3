"""The service's sandbox fits the real binary: each restriction, applied here without systemd.

No systemd runs in the test machine, so each restriction of caramel-embedded.service is
reproduced with the kernel's own means and the real one-file binary runs a whole
lifecycle (posted, then signed and installed, then owner and mode enforced) under it:
- CapabilityBoundingSet=: setpriv --bounding-set with the unit's capabilities, and
  proof that each of them is needed;
- MemoryDenyWriteExecute=: prctl(PR_SET_MDWE), the kernel's version of the same rule;
- SystemCallFilter= and RestrictAddressFamilies=: strace lists every system call and
  socket family of a run (launcher and client), which must all be allowed.
"""

from __future__ import annotations

import ctypes
import errno
import re
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests import fake_signer
from tests.firmware import units
from tests.firmware.conftest import FIRMWARE, require_tool

SERVICE = (FIRMWARE / "systemd" / "caramel-embedded.service").read_text()
UNIT_CAPABILITIES = units.value(SERVICE, "Service", "CapabilityBoundingSet").split()
OWNER = "nobody:nogroup"


class Device:
    """The binary run directly, as the service runs it, against the fake server."""

    def __init__(
        self, binary: Path, signer: fake_signer.FakeCaramel, ca_file: Path, tmp_path: Path
    ) -> None:
        self.binary = binary
        self.signer = signer
        self.server = signer.url  # type: ignore[attr-defined]
        self.ca_file = ca_file
        self.file = tmp_path / "state" / "client.pem"

    def run(
        self,
        *extra: str,
        prefix: Sequence[str] = (),
        preexec: Callable[[], None] | None = None,
        server: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *prefix,
                str(self.binary),
                server or self.server,
                "device-0001",
                "--file",
                str(self.file),
                "--ca-cert",
                str(self.ca_file),
                *extra,
            ],
            env={"PATH": "/usr/bin:/bin"},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            preexec_fn=preexec,
        )


@pytest.fixture
def device(
    frozen_binary: Path, signer: fake_signer.FakeCaramel, ca_file: Path, tmp_path: Path
) -> Device:
    return Device(frozen_binary, signer, ca_file, tmp_path)


def bounded(capabilities: Sequence[str]) -> list[str]:
    """setpriv: a bounding set of exactly these capabilities, as the unit sets it."""
    names = ",".join("+" + c.removeprefix("CAP_").lower() for c in capabilities)
    return [require_tool("setpriv"), f"--bounding-set=-all{',' + names if names else ''}", "--"]


def test_lifecycle_with_the_units_capabilities(device: Device) -> None:
    prefix = bounded(UNIT_CAPABILITIES)
    first = device.run("--owner", OWNER, "--mode", "0640", prefix=prefix)
    assert first.returncode == 69, first.stderr
    device.signer.sign()
    second = device.run("--owner", OWNER, "--mode", "0640", prefix=prefix)
    assert second.returncode == 0, second.stderr
    third = device.run("--owner", OWNER, "--mode", "0600", prefix=prefix)
    assert third.returncode == 0, third.stderr
    assert oct(device.file.stat().st_mode & 0o777) == "0o600"
    assert device.file.stat().st_uid != 0


# Each capability of the unit, and the step that fails without it.
NEEDED = {
    "CAP_CHOWN": "a new file for another owner",
    "CAP_DAC_OVERRIDE": "reading and locking the other owner's file",
    "CAP_FOWNER": "setting the mode of the other owner's file",
}


@pytest.mark.parametrize("missing", sorted(NEEDED))
def test_each_capability_is_needed(device: Device, missing: str) -> None:
    assert set(NEEDED) == set(UNIT_CAPABILITIES)
    fewer = bounded([c for c in UNIT_CAPABILITIES if c != missing])
    if missing == "CAP_CHOWN":
        result = device.run("--owner", OWNER, "--mode", "0640", prefix=fewer)
    else:
        assert device.run("--owner", OWNER, "--mode", "0640").returncode == 69
        mode = "0600" if missing == "CAP_FOWNER" else "0640"
        result = device.run("--owner", OWNER, "--mode", mode, prefix=fewer)
    assert result.returncode == 127, f"{NEEDED[missing]} worked without {missing}"


PR_SET_MDWE = 65
PR_MDWE_REFUSE_EXEC_GAIN = 1


def deny_write_execute() -> None:
    """In the child before exec: no mapping may become writable and executable."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_MDWE)")


def test_lifecycle_with_memory_deny_write_execute(device: Device) -> None:
    assert units.value(SERVICE, "Service", "MemoryDenyWriteExecute") == "yes"
    # A preexec_fn that raises makes subprocess raise, not return a status.
    try:
        subprocess.run(["true"], preexec_fn=deny_write_execute, check=True)
    except subprocess.SubprocessError:
        pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3 or later)")
    first = device.run(preexec=deny_write_execute)
    assert first.returncode == 69, first.stderr
    device.signer.sign()
    second = device.run(preexec=deny_write_execute)
    assert second.returncode == 0, second.stderr


def syscall_group(name: str, seen: set[str] | None = None) -> set[str]:
    """A systemd system call group, its nested groups expanded."""
    seen = seen if seen is not None else set()
    if name in seen:
        return set()
    seen.add(name)
    result = subprocess.run(
        [require_tool("systemd-analyze"), "syscall-filter", name],
        capture_output=True,
        text=True,
        check=True,
    )
    calls: set[str] = set()
    for line in result.stdout.splitlines()[1:]:
        word = line.strip()
        if not word or word.startswith("#"):
            continue
        if word.startswith("@"):
            calls |= syscall_group(word, seen)
        else:
            calls.add(word)
    return calls


TRACED_CALL = re.compile(r"^\d+\s+(?:<\.\.\. )?([a-z0-9_]+)\(", re.M)
SOCKET_FAMILY = re.compile(r"\bsocket\((AF_\w+)")


def test_every_system_call_and_socket_family_is_allowed(device: Device, tmp_path: Path) -> None:
    allowed_calls = set()
    for group in units.values(SERVICE, "Service", "SystemCallFilter"):
        assert not group.startswith("~"), "only allow lists are checked here"
        for name in group.split():
            allowed_calls |= syscall_group(name) if name.startswith("@") else {name}
    allowed_families = set(units.value(SERVICE, "Service", "RestrictAddressFamilies").split())

    # The server by name (the C library's resolver), a user name to resolve (NSS),
    # syslog (a local socket): every path a device takes.
    by_name = device.server.replace("127.0.0.1", "localhost")
    trace = tmp_path / "trace"
    strace = [require_tool("strace"), "-f", "-qq", "-o", str(trace)]
    calls: set[str] = set()
    families: set[str] = set()
    for step in ("posted", "installed"):
        result = device.run("--owner", OWNER, "--syslog", prefix=strace, server=by_name)
        assert result.returncode == (69 if step == "posted" else 0), result.stderr
        text = trace.read_text()
        calls |= set(TRACED_CALL.findall(text))
        families |= set(SOCKET_FAMILY.findall(text))
        if step == "posted":
            device.signer.sign()
    assert {"connect", "flock", "rename", "fchown"} <= calls, "the trace missed the run"
    assert calls - allowed_calls == set(), "system calls outside SystemCallFilter="
    assert {"AF_INET"} <= families
    assert families - allowed_families == set(), "socket families outside RestrictAddressFamilies="


def test_errno_of_denied_calls_is_a_plain_error() -> None:
    """A call denied by the filter fails with EPERM, which the client reports as 127."""
    assert units.value(SERVICE, "Service", "SystemCallErrorNumber") == errno.errorcode[errno.EPERM]
