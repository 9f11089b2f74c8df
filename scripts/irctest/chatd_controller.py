"""An irctest controller for chatd: irctest starts a fresh chatd for every test, as it does
for the servers it ships controllers for (see irctest/controllers/ngircd.py).

Used by scripts/test-irc.sh, which puts this directory on PYTHONPATH and passes
`--controller chatd_controller`. chatd runs the shipped phase 1 pipeline
(pipelines/phase1-single.toml: SQLite, the rate limit on) with one addition, the server operator
irctest's tests log in as (`OPER operuser operpassword`, the route layer's `opers` option), with
its files in a temp dir, the IRC listener on the address irctest picked, and the line protocol
and HTTP on ports the kernel picks. `CHATD_BIN` names the binary (default:
target/release/chatd, built by the script).

What chatd does not have is reported to irctest as not implemented, so those tests are
skipped rather than failed: a server password (PASS), TLS, websockets, and services (the
account registration some tests start with).
"""

import atexit
import os
import shutil
import signal
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
        with open(self.log, "wb") as log:
            self.proc = self.execute(
                [
                    binary,
                    "--pipeline", str(pipeline),
                    "--instance", "My.Little.Server",
                    "--tcp", "127.0.0.1:0",
                    "--http", "127.0.0.1:0",
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
