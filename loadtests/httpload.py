"""A lean closed-loop HTTP driver for throughput figures: threads with keep-alive connections.

The check bodies are prepared (keys blinded) before the timed window and the answers verified
after it, so during the window the client spends its CPU only on sending and receiving: on a
2-core machine shared by client and server, client-side crypto would otherwise take the cores
the server is being measured on. `http.client` rather than httpx for the same reason (a few
times less CPU per request).
"""

from __future__ import annotations

import http.client
import itertools
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

__all__ = ["HttpRun", "post_all"]


@dataclass
class HttpRun:
    """Completed requests of a run: (index of the body, finish time, status, latency)."""

    started: float
    finished: float
    results: list[tuple[int, float, int, float]] = field(default_factory=list)
    answers: dict[int, bytes] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)

    def window(self, start: float, end: float) -> list[tuple[int, float, int, float]]:
        return [r for r in self.results if start <= r[1] < end]


def post_all(
    base_url: str,
    path: str,
    token: str,
    bodies: Sequence[bytes],
    *,
    connections: int,
    duration: float,
    keep_answers: bool = True,
) -> HttpRun:
    """POST `bodies` in order from `connections` threads until they run out or `duration`
    seconds pass, whichever comes first."""
    parts = urlsplit(base_url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    headers = {
        "Authorization": f"Bearer {token}",
        "Content-Type": "application/json",
        "Accept": "application/json",
    }
    counter = itertools.count()
    lock = threading.Lock()
    run = HttpRun(started=time.perf_counter(), finished=0.0)
    deadline = run.started + duration

    def worker() -> None:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        try:
            while time.perf_counter() < deadline:
                index = next(counter)
                if index >= len(bodies):
                    return
                sent = time.perf_counter()
                try:
                    conn.request("POST", path, body=bodies[index], headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                except (OSError, http.client.HTTPException) as exc:
                    with lock:
                        run.errors.append(type(exc).__name__)
                    conn.close()
                    conn = http.client.HTTPConnection(host, port, timeout=60)
                    continue
                done = time.perf_counter()
                with lock:
                    run.results.append((index, done, response.status, done - sent))
                    if keep_answers and response.status == 200:
                        run.answers[index] = data
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    run.finished = time.perf_counter()
    return run
