"""A `batchscribe serve` process on 127.0.0.1 for the service tests, and small HTTP helpers."""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

from services import REPO, free_port, wait_http

TOKEN = "test-token-0123456789abcdef"


@contextmanager
def service(route: tuple[str, ...], store: Path, *extra: str, token: Optional[str] = TOKEN) -> Iterator[str]:
    """`batchscribe serve` as its own process; yields its base URL, stops it after."""
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO / "src")}
    env.pop("BATCHSCRIBE_TOKEN", None)
    if token is not None:
        env["BATCHSCRIBE_TOKEN"] = token
    command = [sys.executable, "-m", "batchscribe", "serve", *route, "--store", str(store), "--port", str(port), *extra]
    log = open(store.parent / f"serve-{port}.log", "w")
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_http(url + "/healthz", 60)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def request(url: str, path: str, body: Optional[bytes] = None, token: Optional[str] = TOKEN,
            method: Optional[str] = None, timeout: float = 30) -> tuple[int, bytes]:  # fmt: skip
    """(status, body) of one request on a fresh connection."""
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=timeout)
    headers = {"Content-Type": "application/json"} | ({"Authorization": f"Bearer {token}"} if token else {})
    try:
        connection.request(method or ("POST" if body is not None else "GET"), path, body, headers)
        reply = connection.getresponse()
        return reply.status, reply.read()
    finally:
        connection.close()


def get_json(url: str, path: str, token: Optional[str] = TOKEN) -> dict:
    status, body = request(url, path, token=token)
    assert status == 200, (status, body)
    return json.loads(body)


class HealthProbe:
    """Asks /healthz every 0.2 s in a thread; records the slowest answer (a failure counts as infinite)."""

    def __init__(self, url: str):
        self.url = url
        self.slowest = 0.0
        self.answers = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while True:  # the first question at once, then every 0.2 s, and a last one after the stop
            stopping = self.stop.is_set()
            started = time.monotonic()
            try:
                status, _ = request(self.url, "/healthz", token=None, timeout=5)
                took = time.monotonic() - started if status == 200 else float("inf")
            except OSError:
                took = float("inf")
            self.slowest = max(self.slowest, took)
            self.answers += 1
            if stopping:
                return
            self.stop.wait(0.2)

    def __enter__(self) -> "HealthProbe":
        self.thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        self.thread.join()
