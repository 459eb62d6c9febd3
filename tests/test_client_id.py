"""Client ids from fake /sys, /proc and /etc trees, and their validation."""

from __future__ import annotations

from pathlib import Path

import pytest

from caramel_embedded import client_id
from caramel_embedded.errors import ClientIdError

pytestmark = pytest.mark.in_process


def put(root: Path, relative: str, content: str | bytes) -> None:
    path = root / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, str):
        content = content.encode()
    path.write_bytes(content)


def interface(root: Path, name: str, address: str, physical: bool = True) -> None:
    put(root, f"sys/class/net/{name}/address", address + "\n")
    if physical:
        (root / f"sys/class/net/{name}/device").mkdir(parents=True)


def test_device_tree_serial_comes_first(tmp_path: Path) -> None:
    put(tmp_path, "proc/device-tree/serial-number", b"SN-1234\x00")
    put(tmp_path, "proc/cpuinfo", "processor\t: 0\nSerial\t\t: 00000000abcdef01\n")
    interface(tmp_path, "eth0", "00:11:22:aa:bb:cc")
    assert client_id.resolve(None, "auto", tmp_path) == "SN-1234"


def test_cpuinfo_serial_when_no_device_tree(tmp_path: Path) -> None:
    put(tmp_path, "proc/cpuinfo", "processor\t: 0\nSerial\t\t: 00000000abcdef01\n")
    put(tmp_path, "sys/class/dmi/id/product_serial", "DMI-9")
    assert client_id.resolve(None, "serial", tmp_path) == "00000000abcdef01"


def test_dmi_serial_last(tmp_path: Path) -> None:
    put(tmp_path, "proc/cpuinfo", "processor\t: 0\nSerial\t\t: 0000000000000000\n")
    put(tmp_path, "sys/class/dmi/id/product_serial", "DMI-9\n")
    assert client_id.resolve(None, "serial", tmp_path) == "DMI-9"


@pytest.mark.parametrize("placeholder", ["To Be Filled By O.E.M.", "0000000", "Default string"])
def test_placeholder_serials_fall_through_to_mac(tmp_path: Path, placeholder: str) -> None:
    put(tmp_path, "sys/class/dmi/id/product_serial", placeholder)
    interface(tmp_path, "eth0", "00:11:22:AA:BB:CC")
    assert client_id.resolve(None, "auto", tmp_path) == "001122aabbcc"


def test_first_physical_interface_by_name(tmp_path: Path) -> None:
    interface(tmp_path, "lo", "00:00:00:00:00:00", physical=False)
    interface(tmp_path, "br0", "02:00:00:00:00:01", physical=False)  # virtual
    interface(tmp_path, "eth0", "00:00:00:00:00:00")  # all zero
    interface(tmp_path, "wlan0", "a4:5e:60:01:02:03")
    interface(tmp_path, "eth1", "00:11:22:33:44:55")
    assert client_id.resolve(None, "mac", tmp_path) == "001122334455"


def test_named_interface(tmp_path: Path) -> None:
    interface(tmp_path, "eth0", "00:11:22:33:44:55")
    interface(tmp_path, "wlan0", "a4:5e:60:01:02:03")
    assert client_id.resolve(None, "mac:wlan0", tmp_path) == "a45e60010203"
    with pytest.raises(ClientIdError, match="wlan9"):
        client_id.resolve(None, "mac:wlan9", tmp_path)
    with pytest.raises(ClientIdError, match="bad interface"):
        client_id.resolve(None, "mac:../../etc", tmp_path)


def test_machine_id_and_file(tmp_path: Path) -> None:
    put(tmp_path, "etc/machine-id", "0123456789abcdef0123456789abcdef\n")
    assert client_id.resolve(None, "machine-id", tmp_path) == "0123456789abcdef0123456789abcdef"
    put(tmp_path, "id.txt", "  unit-42  \nsecond line\n")
    assert client_id.resolve(None, f"file:{tmp_path / 'id.txt'}", tmp_path) == "unit-42"


def test_nothing_found_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ClientIdError, match="give CLIENT_ID or --client-id-from"):
        client_id.resolve(None, "auto", tmp_path)
    with pytest.raises(ClientIdError, match="cannot read"):
        client_id.resolve(None, f"file:{tmp_path / 'missing'}", tmp_path)


@pytest.mark.parametrize(
    "candidate",
    ["", "a b", "x" * 65, "semi;colon", "slash/", "ünï", "new\nline"],
)
def test_invalid_ids_are_refused(candidate: str, tmp_path: Path) -> None:
    interface(tmp_path, "eth0", "00:11:22:33:44:55")
    with pytest.raises(ClientIdError):
        client_id.resolve(candidate, "auto", tmp_path)


@pytest.mark.parametrize("candidate", ["a", "x" * 64, "A-Z.a_z:0@9"])
def test_valid_ids_pass(candidate: str) -> None:
    assert client_id.validate(candidate) == candidate


def test_invalid_file_content_is_refused_not_replaced(tmp_path: Path) -> None:
    put(tmp_path, "id.txt", "has space\n")
    interface(tmp_path, "eth0", "00:11:22:33:44:55")
    with pytest.raises(ClientIdError, match="has space"):
        client_id.resolve(None, f"file:{tmp_path / 'id.txt'}", tmp_path)
