"""An irctest controller for chatd: irctest starts a fresh chatd for every test, as it does
for the servers it ships controllers for (see irctest/controllers/ngircd.py).

Used by scripts/test-irc.sh, which puts this directory on PYTHONPATH and passes
`--controller chatd_controller`. chatd runs the shipped phase 1 pipeline
(pipelines/phase1-single.toml: SQLite, the rate limit on) with one addition, the server operator
irctest's tests log in as (`OPER operuser operpassword`, the route layer's `opers` option), with
its files in a temp dir, the IRC listener on the address irctest picked, and the line protocol
and HTTP on ports of its own (see `_own_ports`). `CHATD_BIN` names the binary (default:
target/release/chatd, built by the script).

What chatd does not have is reported to irctest as not implemented, so those tests are
skipped rather than failed: a server password (PASS), TLS, websockets, and services (the
account registration some tests start with).
"""

import atexit
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Optional, Set, Type

from irctest.basecontrollers import BaseServerController
from irctest.runner import NotImplementedByController

# The pipeline chatd runs without --pipeline, which this controller copies.
PIPELINE = Path(__file__).resolve().parents[2] / "pipelines" / "phase1-single.toml"
# The operator irctest's tests log in as (irctest/controllers/*.py configure the same).
OPER = 'opers = [{ name = "operuser", password = "operpassword" }]'


# Where the line protocol and HTTP listeners of each pytest worker's chatds go: a block of ports
# per worker, below the kernel's ephemeral range (32768 and up on Linux). irctest picks the IRC
# port of each test by binding port 0 and letting it go, and the server binds it later; a chatd of
# another worker that let the kernel pick its own ports (`127.0.0.1:0`) could take that very
# port meanwhile, and the test's server then failed with "Address already in use".
PORTS_PER_WORKER = 2000
FIRST_PORT = 10000
_next_port = 0


def _own_ports() -> tuple:
    """Two free loopback ports of this worker's block (gw0 has 10000-11999, gw1 12000-13999...,
    wrapping after ten workers); each test's chatd is stopped before the worker's next test."""
    global _next_port
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    index = int(worker[2:]) if worker[2:].isdigit() else 0
    base = FIRST_PORT + (index % 10) * PORTS_PER_WORKER
    ports = []
    for _ in range(PORTS_PER_WORKER):
        port = base + _next_port % PORTS_PER_WORKER
        _next_port += 1
        with socket.socket() as probe:
            try:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        ports.append(port)
        if len(ports) == 2:
            return tuple(ports)
    raise RuntimeError(f"no two free ports in {base}-{base + PORTS_PER_WORKER - 1}")


# The controllers whose chatd was started and not stopped yet. irctest stops a server in its tests'
# teardown, which pytest skips when a test's setUp fails after the server started (bot_mode.py
# skips that way): those are stopped when the pytest worker exits.
_running = set()


@atexit.register
def _stop_leftovers() -> None:
    for controller in list(_running):
        # A chatd that exited during setUp failed its test, and unittest skips tearDown then.
        controller._keep_log_if_stopped()
        try:
            os.killpg(controller.proc.pid, signal.SIGTERM)
        except OSError:
            pass


class ChatdController(BaseServerController):
    software_name = "chatd"
    supported_sasl_mechanisms: Set[str] = set()
    supports_sts = False

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.directory: Optional[Path] = None

    def run(
        self,
        hostname: str,
        port: int,
        *,
        password: Optional[str],
        ssl: bool,
        run_services: bool,
        faketime: Optional[str],
        websocket_hostname: Optional[str],
        websocket_port: Optional[int],
    ) -> None:
        if password is not None:
            raise NotImplementedByController("PASS (chatd has no server password)")
        if ssl:
            raise NotImplementedByController("TLS")
        if websocket_hostname is not None or websocket_port is not None:
            raise NotImplementedByController("Websocket")
        assert self.proc is None
        self.hostname, self.port = hostname, port
        self.directory = Path(tempfile.mkdtemp(prefix="chatd-irctest-"))
        binary = os.environ.get("CHATD_BIN", "target/release/chatd")
        env = dict(os.environ, CHATD_DATA_DIR=str(self.directory))
        pipeline = self.directory / "pipeline.toml"
        route = 'kind = "route"'
        text = PIPELINE.read_text()
        assert route in text, f"{PIPELINE} has no route layer"
        pipeline.write_text(text.replace(route, f"{route}\n{OPER}", 1))
        # chatd's output goes to a file beside its data (irctest sends it to /dev/null): when
        # chatd stops on its own, `kill` keeps it (see there).
        self.log = self.directory / "chatd.log"
        tcp, http = _own_ports()
        with open(self.log, "wb") as log:
            self.proc = self.execute(
                [
                    binary,
                    "--pipeline", str(pipeline),
                    "--instance", "My.Little.Server",
                    "--tcp", f"127.0.0.1:{tcp}",
                    "--http", f"127.0.0.1:{http}",
                    "--irc", f"{hostname}:{port}",
                ],
                env=env,
                stdout=log,
                stderr=log,
            )
        _running.add(self)

    def wait_for_services(self) -> None:
        """chatd has no services (NickServ...): nothing to wait for."""

    def kill(self) -> None:
        _running.discard(self)
        self._keep_log_if_stopped()
        super().kill()
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)
            self.directory = None


    def _keep_log_if_stopped(self) -> None:
        """A chatd that exited before irctest stopped it failed its test with only "process
        returned N": its output is copied to `$CHATD_IRCTEST_STOPPED` (scripts/test-irc.sh
        prints what is there) and to stderr, which pytest shows with the failure."""
        if self.proc is None or self.proc.poll() is None or self.directory is None:
            return
        text = self.log.read_text(errors="replace") if self.log.exists() else "(no output)"
        note = f"chatd on port {self.port} exited with {self.proc.returncode} before its test ended:\n{text}"
        sys.stderr.write(note)
        keep = os.environ.get("CHATD_IRCTEST_STOPPED")
        if keep:
            Path(keep).mkdir(parents=True, exist_ok=True)
            (Path(keep) / f"chatd-{self.port}-{self.proc.pid}.log").write_text(note)


def get_irctest_controller_class() -> Type[ChatdController]:
    return ChatdController
