"""A real `refcheck-server` on 127.0.0.1 for the tests that need the sync client or the CLI.

Started as its users start it: `refcheck-server init --demo` in a fresh data directory (which
writes the demo credentials files), then `refcheck-server serve` on a free port, in a
subprocess. Used through `running_server()`; tests/cli and tests/sdk each hold one per session.

`init --demo` writes the demo network's policy (the filter published inside every change, so a
test can check right after registering) and every credentials file, the first admin's
included, under DATA_DIR/demo/.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx


@dataclass(frozen=True)
class LiveServer:
    base_url: str
    data_dir: Path
    admin_credentials: Path

    @property
    def demo_dir(self) -> Path:
        return self.data_dir / "demo"

    def credentials(self, name: str) -> Path:
        """A demo principal's credentials file: admin, auditor, org-a-focal, org-b-hr, ..."""
        return self.admin_credentials if name == "admin" else self.demo_dir / f"{name}.json"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _server_command() -> list[str]:
    script = Path(sys.executable).with_name("refcheck-server")
    return [str(script)] if script.exists() else [sys.executable, "-m", "server.cli"]


@contextmanager
def running_server(
    data_dir: Path, *, prepare: Callable[[Path], None] | None = None
) -> Iterator[LiveServer]:
    """`prepare(data_dir)` runs between `init` and `serve` (to change the network's policy file,
    `data_dir / "network.toml"`, say)."""
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "REFCHECK_ENVIRONMENT": "development",
        "REFCHECK_RUN_BACKGROUND_JOBS": "false",
        "REFCHECK_LOG_LEVEL": "warning",
    }
    env.pop("REFCHECK_DATABASE_URL", None)
    init = subprocess.run(
        [*_server_command(), "init", "--data-dir", str(data_dir), "--demo", "--base-url", base_url],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert init.returncode == 0, init.stderr
    admin = data_dir / "demo" / "admin.json"
    assert admin.exists(), init.stdout
    if prepare is not None:
        prepare(data_dir)
    log = (data_dir / "server.log").open("w")
    proc = subprocess.Popen(
        [*_server_command(), "serve", "--data-dir", str(data_dir), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(base_url + "/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(
                    "refcheck-server did not start: " + (data_dir / "server.log").read_text()
                )
            time.sleep(0.2)
        yield LiveServer(base_url=base_url, data_dir=data_dir, admin_credentials=admin)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
