"""The server's hint through the real command: checks spared, and every doubt a check.

A fake signer over real TLS adds ``Cache-Control: max-age`` to its 200 and 304 answers, as
an operator's front would. The runtime directory is a tmpfs mounted for the test (as
root), else one in /dev/shm; whether a directory is a tmpfs is asked of ``stat -f``
(statfs(2)), not of the module under test (``ram_dir``, ``disk_dir``: tests/conftest.py).
"No traffic" is the signer's own count of the requests it saw.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest
from werkzeug import Request, Response

from caramel_embedded import hint, hint_stamp
from testbed.ca_factory import make_authority
from tests.conftest import Client
from tests.fake_signer import FakeCaramel
from tests.test_protocol import LAST_MODIFIED, installed
from tests.test_status_line import status_of

HOUR = 3600


def with_hint(client: Client, signer: FakeCaramel, ram_dir: Path, max_age: int = HOUR) -> None:
    """A certificate installed by a run that got ``max-age`` and kept it in ``ram_dir``."""
    signer.cache_control = f"max-age={max_age}"
    client.run()  # enrolled: 69
    signer.sign()
    result = client.run("--runtime-dir", str(ram_dir))
    assert result.returncode == 0, result.stderr
    assert kept(ram_dir, client) is not None


def kept(ram_dir: Path, client: Client) -> hint.Stamp | None:
    path = hint_stamp.stamp_path(ram_dir, client.file)
    return hint.read(path.read_bytes()) if path.exists() else None


def asks(client: Client, signer: FakeCaramel, *extra: str, **run: object) -> bool:
    """Run once more (exit 0 expected); whether the server was asked."""
    before = len(signer.seen)
    result = client.run(*extra, **run)  # type: ignore[arg-type]
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return len(signer.seen) > before


def test_a_kept_hint_spares_the_next_run_all_network_work(
    client: Client, signer: FakeCaramel, ram_dir: Path
) -> None:
    with_hint(client, signer, ram_dir)
    assert not asks(client, signer, "--runtime-dir", str(ram_dir))
    assert not asks(client, signer, env={"CARAMEL_RUNTIME_DIR": str(ram_dir)})
    assert not asks(client, signer, env={"RUNTIME_DIRECTORY": f"{ram_dir}:/elsewhere"})
    assert asks(client, signer, "--runtime-dir", str(ram_dir / "other"))


def test_a_304_with_max_age_keeps_the_hint_too(
    client: Client, signer: FakeCaramel, ram_dir: Path
) -> None:
    installed(client, signer, last_modified=LAST_MODIFIED)
    signer.honour_if_modified_since = True
    signer.cache_control = "max-age=600"
    assert asks(client, signer, "--runtime-dir", str(ram_dir))
    assert signer.seen[-1].headers.get("If-Modified-Since") == LAST_MODIFIED  # the 304 path
    assert not asks(client, signer, "--runtime-dir", str(ram_dir))


def test_no_stamp_is_written_outside_a_tmpfs(
    client: Client, signer: FakeCaramel, disk_dir: Path
) -> None:
    signer.cache_control = "max-age=3600"
    installed(client, signer)
    assert asks(client, signer, "--runtime-dir", str(disk_dir))
    assert list(disk_dir.iterdir()) == []
    assert asks(client, signer, "--runtime-dir", str(disk_dir))
    # Nor a directory made for it there.
    assert asks(client, signer, "--runtime-dir", str(disk_dir / "new"))
    assert list(disk_dir.iterdir()) == []


def test_a_missing_runtime_directory_on_a_tmpfs_is_made(
    client: Client, signer: FakeCaramel, ram_dir: Path
) -> None:
    with_hint(client, signer, ram_dir / "made")
    assert (ram_dir / "made").stat().st_mode & 0o777 == 0o700


def test_a_changed_file_asks_again(client: Client, signer: FakeCaramel, ram_dir: Path) -> None:
    with_hint(client, signer, ram_dir)
    info = client.file.stat()
    os.utime(client.file, ns=(info.st_atime_ns, info.st_mtime_ns + 1))  # only the mtime
    assert asks(client, signer, "--runtime-dir", str(ram_dir))
    with_hint(client, signer, ram_dir)  # kept again for the file as it is now
    assert not asks(client, signer, "--runtime-dir", str(ram_dir))
    copy = client.file.with_name("copy")
    shutil.copy2(client.file, copy)  # the same bytes and mtime, another inode
    os.replace(copy, client.file)
    assert asks(client, signer, "--runtime-dir", str(ram_dir))


def test_another_server_or_ca_asks_again(
    client: Client, signer: FakeCaramel, ram_dir: Path, tmp_path: Path
) -> None:
    with_hint(client, signer, ram_dir)
    prefixed = Client(f"{client.server}/caramel", client.file, client.ca_file)  # same signer
    assert asks(prefixed, signer, "--runtime-dir", str(ram_dir))
    with_hint(client, signer, ram_dir)
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(client.ca_file.read_bytes() + make_authority().pem)
    assert asks(Client(client.server, client.file, bundle), signer, "--runtime-dir", str(ram_dir))


def test_another_client_id_asks_again(client: Client, signer: FakeCaramel, ram_dir: Path) -> None:
    with_hint(client, signer, ram_dir)
    before = len(signer.seen)
    other = Client(client.server, client.file, client.ca_file, "device-0002")
    assert other.run("--runtime-dir", str(ram_dir)).returncode == 69  # its request posted
    assert len(signer.seen) > before


def rewrite(ram_dir: Path, client: Client, **changes: int) -> None:
    stamp = kept(ram_dir, client)
    assert stamp is not None
    hint_stamp.stamp_path(ram_dir, client.file).write_bytes(hint.render(stamp.replace(**changes)))


def test_a_clock_that_went_back_asks_again(
    client: Client, signer: FakeCaramel, ram_dir: Path
) -> None:
    with_hint(client, signer, ram_dir)
    now = int(dt.datetime.now(dt.UTC).timestamp())
    rewrite(ram_dir, client, made_at=now + 600, fresh_until=now + 1200)  # made "later"
    assert asks(client, signer, "--runtime-dir", str(ram_dir))


@pytest.mark.parametrize(
    "content", [b"", b"garbage\n", b"\xff" * 10], ids=["empty", "garbage", "binary"]
)
def test_an_odd_stamp_asks_again(
    client: Client, signer: FakeCaramel, ram_dir: Path, content: bytes
) -> None:
    with_hint(client, signer, ram_dir)
    hint_stamp.stamp_path(ram_dir, client.file).write_bytes(content)
    assert asks(client, signer, "--runtime-dir", str(ram_dir))


def test_a_stamp_others_may_write_asks_again(
    client: Client, signer: FakeCaramel, ram_dir: Path
) -> None:
    with_hint(client, signer, ram_dir)
    hint_stamp.stamp_path(ram_dir, client.file).chmod(0o666)
    assert asks(client, signer, "--runtime-dir", str(ram_dir))


def test_check_now_asks_and_an_answer_without_hint_drops_the_stamp(
    client: Client, signer: FakeCaramel, ram_dir: Path
) -> None:
    with_hint(client, signer, ram_dir)
    assert asks(client, signer, "--runtime-dir", str(ram_dir), "--check-now")
    assert asks(
        client, signer, env={"CARAMEL_RUNTIME_DIR": str(ram_dir), "CARAMEL_CHECK_NOW": "1"}
    )
    assert kept(ram_dir, client) is not None  # renewed by the answers' max-age
    signer.cache_control = None
    assert asks(client, signer, "--runtime-dir", str(ram_dir), "--check-now")
    assert kept(ram_dir, client) is None
    assert asks(client, signer, "--runtime-dir", str(ram_dir))


def lasts(stamp: hint.Stamp | None) -> int:
    assert stamp is not None
    return stamp.fresh_until - stamp.made_at


def test_the_hint_is_capped_by_hint_limit(
    client: Client, signer: FakeCaramel, ram_dir: Path
) -> None:
    with_hint(client, signer, ram_dir, max_age=7200)
    assert lasts(kept(ram_dir, client)) == 7200
    signer.cache_control = "max-age=86400"
    assert asks(
        client, signer, "--runtime-dir", str(ram_dir), "--check-now", "--hint-limit", "600"
    )
    assert lasts(kept(ram_dir, client)) == 600
    now = int(dt.datetime.now(dt.UTC).timestamp())
    rewrite(ram_dir, client, made_at=now - 400, fresh_until=now + 200)
    assert not asks(client, signer, "--runtime-dir", str(ram_dir))
    assert asks(client, signer, "--runtime-dir", str(ram_dir), "--hint-limit", "300")  # lowered
    assert asks(client, signer, "--runtime-dir", str(ram_dir), "--hint-limit", "0")
    assert kept(ram_dir, client) is None  # 0: never kept


def test_the_hint_is_capped_by_a_quarter_of_the_remaining_validity(
    client: Client, signer: FakeCaramel, ram_dir: Path
) -> None:
    signer.cache_control = "max-age=86400"
    ends = dt.datetime.now(dt.UTC) + dt.timedelta(hours=8)
    installed(client, signer, not_after=ends)
    assert asks(client, signer, "--runtime-dir", str(ram_dir))
    stamp = kept(ram_dir, client)
    assert stamp is not None
    quarter = (ends.timestamp() - stamp.made_at) / 4
    assert quarter - 5 <= lasts(stamp) <= quarter
    assert not asks(client, signer, "--runtime-dir", str(ram_dir))


def test_status_says_whether_the_server_was_asked(
    client: Client, signer: FakeCaramel, ram_dir: Path
) -> None:
    signer.cache_control = "max-age=3600"
    installed(client, signer)
    asked = status_of(client.run("--runtime-dir", str(ram_dir), "--status"))
    assert (asked["status"], asked["checked"]) == ("current", "yes")
    spared = status_of(client.run("--runtime-dir", str(ram_dir), "--status"))
    assert (spared["status"], spared["exit"], spared["checked"]) == ("current", "0", "no")
    assert spared["not_after"] == asked["not_after"]
    assert spared["request"] == asked["request"]


def test_wait_never_skips_for_a_stamp(client: Client, signer: FakeCaramel, ram_dir: Path) -> None:
    with_hint(client, signer, ram_dir)
    assert asks(client, signer, "--runtime-dir", str(ram_dir), "--wait")
    assert not asks(client, signer, "--runtime-dir", str(ram_dir))  # and it keeps the hint


@pytest.mark.parametrize("value", ["-1", "1.5", "x", "", "99999999999", "\uff13"])
def test_a_bad_hint_limit_is_one_line_and_127(client: Client, value: str) -> None:
    result = client.run("--hint-limit", value)
    assert result.returncode == 127
    assert result.stderr.count("\n") == 1
    assert "--hint-limit" in result.stderr
    assert not client.file.exists()


@pytest.mark.parametrize(
    ("lines", "keeps"),
    [
        (["no-store", "max-age=600"], False),  # the last line alone would say 600
        (["max-age=600", "public"], True),  # the last line alone would say nothing
    ],
    ids=["no-store-first", "max-age-first"],
)
def test_every_cache_control_line_counts(
    client: Client, signer: FakeCaramel, ram_dir: Path, lines: list[str], keeps: bool
) -> None:
    installed(client, signer)
    _, entry = signer.only_entry()

    def answer(request: Request) -> Response | None:
        if request.method != "GET":
            return None
        headers = [("Cache-Control", line) for line in lines]
        return Response(entry.certificate_pem, 200, headers=headers)

    signer.forced = answer
    assert asks(client, signer, "--runtime-dir", str(ram_dir))
    assert (kept(ram_dir, client) is not None) is keeps


def test_verbose_says_why_a_run_asked_or_not(
    client: Client, signer: FakeCaramel, ram_dir: Path
) -> None:
    with_hint(client, signer, ram_dir)
    spared = client.run("--runtime-dir", str(ram_dir), "-v")
    assert spared.returncode == 0
    assert "the server's hint: nothing new before" in spared.stderr
    info = client.file.stat()
    os.utime(client.file, ns=(info.st_atime_ns, info.st_mtime_ns + 1))
    asked = client.run("--runtime-dir", str(ram_dir), "-v")
    assert asked.returncode == 0
    assert "the combined file changed since the hint was kept: asking the server" in asked.stderr
    assert f"kept the server's hint in {ram_dir}" in asked.stderr
