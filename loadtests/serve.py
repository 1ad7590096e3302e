"""Running the real server for a benchmark or load test: uvicorn, 2 workers, 127.0.0.1 only.

`refcheck-server serve` runs one process; a 2-core machine needs two workers to use both cores,
so uvicorn is started directly with `--factory server.app:create_app`, which builds the app from
the `REFCHECK_*` environment of the network (data dir, database URL, policy file). The schema
is already current (`refcheck-server init` migrated it).

With `--workers N` uvicorn leaves Nagle's algorithm on for every connection (uvicorn issue
3149), so the server runs with `server.http_protocol.NoDelayHttpToolsProtocol`, as
`refcheck-server serve --workers N` does.

Only this process's own child is ever stopped, by its pid (SIGTERM, then SIGKILL after a grace
period); the server listens on the loopback interface and nowhere else.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from loadtests.network import DemoNetwork
from server.http_protocol import IMPORT_PATH as NODELAY_PROTOCOL
from server.http_protocol import take_turns_at_accepting

HOST = "127.0.0.1"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def healthy(port: int) -> bool:
    """The server on 127.0.0.1:`port` answers `/healthz` with 200."""
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", "/healthz")
        return conn.getresponse().status == 200
    except OSError:
        return False
    finally:
        conn.close()


@contextlib.contextmanager
def running_server(
    network: DemoNetwork,
    port: int,
    *,
    workers: int = 2,
    log_path: Path | None = None,
    startup_timeout: float = 60.0,
    nodelay: bool = True,
) -> Iterator[str]:
    """Start uvicorn for `network` on 127.0.0.1:`port`; yield its base URL; stop it."""
    env = network.env()
    if workers > 1:
        take_turns_at_accepting(env)  # as `refcheck-server serve --workers N` does
    env["REFCHECK_RUN_BACKGROUND_JOBS"] = "false"
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "--factory",
        "server.app:create_app",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    if nodelay:
        cmd += ["--http", NODELAY_PROTOCOL]
    log = open(log_path, "wb") if log_path else subprocess.DEVNULL  # noqa: SIM115
    proc = subprocess.Popen(
        cmd,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        cwd=Path(__file__).resolve().parent.parent,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + startup_timeout
        while not healthy(port):
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited during start-up (code {proc.returncode})")
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not answer /healthz within the start-up time")
            time.sleep(0.2)
        yield f"http://{HOST}:{port}"
    finally:
        _stop(proc)
        if log_path:
            log.close()  # type: ignore[union-attr]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the server's own process group (uvicorn's supervisor and the workers it
    forked), SIGKILL if it is still there after 15 s."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=5)
