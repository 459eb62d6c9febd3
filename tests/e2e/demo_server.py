"""``make demo-server``, ``make demo-sign``, ``make demo-stop``: the demo's server, kept.

``python -m tests.e2e.demo_server start|sign|stop [--state DIR]`` from the repository root.
``start`` builds the same stack as ``make demo`` (Caramel 1.9.6 behind nginx, on loopback
ports), leaves it running detached from the shell, writes what it started to
``DIR/state.json`` (default ``.cache/demo-server``) and prints how to use it: the URL, the
CA file, the client's command, how to sign and how to stop. ``sign`` signs every request
that waits, with Caramel's own ``caramel_tool``. ``stop`` stops the processes it recorded
(only those still running the stack in DIR: a process id may have been reused since) and
removes DIR. Exit status 0, or 1 with one line saying what went wrong.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from testbed.command import ENV_VAR, client_command
from testbed.harness import CaramelStack, HarnessError
from testbed.processes import INTERRUPTS
from testbed.server_venv import REPO_ROOT, SERVER_VENV

STATE_DIR = REPO_ROOT / ".cache" / "demo-server"
STATE_FILE = "state.json"
CLIENT_ID = "my-device"
STOP_TIMEOUT = 10.0


@dataclass(frozen=True)
class Running:
    """What ``start`` left running, as recorded in the state directory."""

    directory: Path
    url: str
    lm_url: str
    pids: dict[str, int]

    @property
    def server_dir(self) -> Path:
        """The stack's own directory: Caramel's INI, database and CA, nginx's files."""
        return self.directory / "server"

    @property
    def ca_cert(self) -> Path:
        return self.server_dir / "ca" / "caramel.ca.cert"

    @property
    def ini(self) -> Path:
        return self.server_dir / "caramel.ini"

    @property
    def device_file(self) -> Path:
        """The scratch device's combined file, removed with the rest by ``stop``."""
        return self.directory / "device" / "client.pem"

    def save(self) -> None:
        record = {"url": self.url, "lm_url": self.lm_url, "pids": self.pids}
        (self.directory / STATE_FILE).write_text(json.dumps(record, indent=2) + "\n")

    @classmethod
    def load(cls, directory: Path) -> Running | None:
        """The recorded server, or None when nothing was recorded in ``directory``."""
        try:
            record = json.loads((directory / STATE_FILE).read_text())
        except FileNotFoundError:
            return None
        return cls(directory, record["url"], record["lm_url"], dict(record["pids"]))


def shown(path: Path, base: Path) -> str:
    """A path as the printed commands name it: from ``base`` (where make runs) when under it."""
    return str(path.relative_to(base)) if path.is_relative_to(base) else str(path)


def usage_lines(
    running: Running, client: Sequence[str], caramel_tool: Path, base: Path
) -> list[str]:
    """What to type next, from ``base``, with this server's URL and files in every command."""
    ca_cert, ini = shown(running.ca_cert, base), shown(running.ini, base)
    device = [*client, "--ca-cert", ca_cert, "--file", shown(running.device_file, base)]
    tool = shlex.join([shown(caramel_tool, base), ini])
    return [
        f"The demo's Caramel 1.9.6 runs behind nginx on loopback. From {base}:",
        f"  server URL: {running.url}",
        f"  CA file:    {ca_cert}",
        f"  (the same with Last-Modified and 304: {running.lm_url})",
        "",
        "1. Run the client as a device would: a new key and request, exit 69 (waiting):",
        f'     {shlex.join([*device, running.url, CLIENT_ID])}; echo "exit $?"',
        "2. Sign the waiting request, as Caramel's operator does:",
        "     make demo-sign",
        "   which runs Caramel's admin command, caramel_tool: --list shows the requests",
        "   (ID CN SHA256 NOTAFTER), --sign ID signs one, --reject ID rejects it:",
        f"     {tool} --list",
        "3. Run the client again: it installs the certificate, exit 0.",
        f"4. Stop the server and remove {shown(running.directory, base)}:",
        "     make demo-stop",
    ]


def is_our_process(cmdline: bytes, server_dir: Path) -> bool:
    """Whether a process's command line runs the stack in ``server_dir`` (pserve's INI
    and nginx's prefix are in it): a recorded process id may since belong to another."""
    root = os.fsencode(server_dir)
    words = cmdline.replace(b"\0", b" ").split()
    return any(word == root or word.startswith(root + b"/") for word in words)


def running_ours(pid: int, server_dir: Path) -> bool:
    """Alive (a zombie is not), and running our stack."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, IndexError):
        return False
    return state != "Z" and is_our_process(cmdline, server_dir)


def human_client_command(base: Path) -> list[str]:
    """The client as a person types it from ``base``: the venv's console script, unless
    CARAMEL_EMBEDDED_CMD names another command."""
    script = Path(sys.executable).parent / "caramel-embedded"
    if os.environ.get(ENV_VAR) or not script.is_file():
        return client_command()
    return [shown(script, base)]


def say(text: str = "") -> None:
    print(text, flush=True)


def say_usage(running: Running) -> None:
    """The lines to use the server, from where make runs (the repository root)."""
    base = Path.cwd()
    say("\n".join(usage_lines(running, human_client_command(base), caramel_tool(), base)))


def start(directory: Path) -> int:
    """Start the stack detached, record it, print how to use it; a running one is kept."""
    running = Running.load(directory)
    if running is not None:
        if all(running_ours(pid, running.server_dir) for pid in running.pids.values()):
            say("The demo server is already running.")
            say_usage(running)
            return 0
        say("A demo server was recorded but is not running: starting a new one.")
        stop(directory, quiet=True)
    shutil.rmtree(directory, ignore_errors=True)
    (directory / "device").mkdir(parents=True)
    started = time.monotonic()
    stack = CaramelStack(workdir=directory / "server", keep=True, detached=True)
    with INTERRUPTS.installed():
        try:
            stack.start()
        except BaseException:
            stack.close()
            shutil.rmtree(directory, ignore_errors=True)
            raise
    assert stack.caramel is not None
    assert stack.nginx is not None
    pids = {"caramel": stack.caramel.process.pid, "nginx": stack.nginx.process.pid}
    running = Running(directory, stack.front_url, stack.lm_front_url, pids)
    running.save()
    say(
        f"Started in {time.monotonic() - started:.0f} s: Caramel (pid {pids['caramel']}) and "
        f"nginx (pid {pids['nginx']}), detached from this shell."
    )
    say_usage(running)
    return 0


def caramel_tool() -> Path:
    return SERVER_VENV / "bin" / "caramel_tool"


def sign(directory: Path) -> int:
    """Sign every request that waits for a signature, with caramel_tool --sign."""
    running = Running.load(directory)
    if running is None:
        say("no demo server is running: start one with `make demo-server`")
        return 1
    stack = CaramelStack.running_in(running.server_dir)
    waiting = [record for record in stack.list_requests() if not record.signed]
    if not waiting:
        say(
            "no request waits for a signature: run the client first (`make demo-server` "
            "prints its command)"
        )
        return 1
    for record in waiting:
        done = stack.sign(record.id)
        say(f"$ {shlex.join(done.argv)}")
        say(f"  signed request {record.id} of {record.cn}: run the client again (exit 0)")
    return 0


def stop(directory: Path, quiet: bool = False) -> int:
    """TERM each recorded process group still running our stack, KILL it after
    STOP_TIMEOUT, then remove the state directory."""
    running = Running.load(directory)
    if running is None:
        shutil.rmtree(directory, ignore_errors=True)
        if not quiet:
            say("no demo server is running")
        return 0
    ours = {
        name: pid for name, pid in running.pids.items() if running_ours(pid, running.server_dir)
    }
    for pid in ours.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while any(running_ours(pid, running.server_dir) for pid in ours.values()):
        if time.monotonic() > deadline:
            for pid in ours.values():
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(pid, signal.SIGKILL)
            break
        time.sleep(0.05)
    shutil.rmtree(directory, ignore_errors=True)
    if not quiet:
        stopped = ", ".join(f"{name} (pid {pid})" for name, pid in ours.items()) or "nothing"
        say(f"stopped {stopped}; removed {directory}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.e2e.demo_server")
    parser.add_argument("action", choices=("start", "sign", "stop"))
    parser.add_argument("--state", type=Path, default=STATE_DIR, help="the state directory")
    arguments = parser.parse_args(argv)
    directory = arguments.state.resolve()
    actions = {"start": start, "sign": sign, "stop": stop}
    try:
        return actions[arguments.action](directory)
    except HarnessError as error:
        say(f"demo server: {error}")
        return 1
    except KeyboardInterrupt:
        say("interrupted; nothing was left running")
        return 1


if __name__ == "__main__":
    sys.exit(main())
