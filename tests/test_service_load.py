"""`batchscribe serve` under load and abuse, on 127.0.0.1: 64 concurrent posters, wrong tokens,
a 100 MB body, clients that trickle a byte a second, and 10,000 malformed bodies. The service must
answer every notification, enqueue each object once, and keep answering /healthz within 1 s.

Loops are bounded in count and time; the figures are printed (pytest -s shows them)."""

from __future__ import annotations

import http.client
import json
import random
import select
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from service_client import TOKEN, HealthProbe, get_json, request, service

ROUTE = ("--input", "s3://media/audio-input/", "-o", "s3://media/transcription-output/",
         "--endpoint-url", "http://127.0.0.1:9")  # fmt: skip  # events carry ETags: the store is never asked
CLIENTS = 64


def notification(n: int) -> bytes:
    record = {"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "media"},
              "object": {"key": f"audio-input/load/file-{n:04d}.flac", "eTag": f"etag-{n}", "size": 1000}}}  # fmt: skip
    return json.dumps({"Records": [record]}).encode()


def post_all(url: str, bodies: list[bytes], token: str = TOKEN) -> tuple[list[int], list[float], list[str]]:
    """POST every body to / from CLIENTS threads, each on its own kept-alive connection:
    (statuses, latencies in seconds, connection errors)."""
    host, port = url.removeprefix("http://").split(":")
    statuses, latencies, errors = [], [], []
    lock = threading.Lock()

    def client(share: list[bytes]) -> None:
        connection = http.client.HTTPConnection(host, int(port), timeout=60)
        headers = {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}
        for body in share:
            started = time.monotonic()
            try:
                connection.request("POST", "/", body, headers)
                reply = connection.getresponse()
                reply.read()
                outcome = reply.status
            except (OSError, http.client.HTTPException) as error:
                connection.close()
                connection = http.client.HTTPConnection(host, int(port), timeout=60)
                outcome = repr(error)
            with lock:
                if isinstance(outcome, int):
                    statuses.append(outcome)
                    latencies.append(time.monotonic() - started)
                else:
                    errors.append(outcome)
        connection.close()

    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(client, [bodies[n::CLIENTS] for n in range(CLIENTS)]))
    return statuses, latencies, errors


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("load")
    with service(ROUTE, folder / "jobs.db", "--request-timeout", "3") as url:
        yield url


def test_64_clients_post_2000_notifications_for_1000_objects(loaded):
    bodies = [notification(n) for n in range(1000)] * 2  # every object announced twice, as S3 and MinIO do
    random.Random(7).shuffle(bodies)
    with HealthProbe(loaded) as probe:
        statuses, latencies, errors = post_all(loaded, bodies)
    quantiles = statistics.quantiles(latencies, n=100)
    print(f"\n2000 notifications from {CLIENTS} clients: {len(errors)} connection errors, "
          f"{sum(s != 200 for s in statuses)} not 200; p50 {quantiles[49] * 1000:.1f} ms, "
          f"p99 {quantiles[98] * 1000:.1f} ms; slowest /healthz {probe.slowest:.3f} s")  # fmt: skip
    assert errors == [] and statuses == [200] * 2000
    assert get_json(loaded, "/api/status")["counts"]["queued"] == 1000
    assert probe.slowest < 1.0


def test_no_token_or_a_wrong_one_gets_401_and_enqueues_nothing(loaded):
    before = get_json(loaded, "/api/status")["counts"]
    for token in (None, "wrong-token-0123456789", TOKEN[:-1]):
        assert request(loaded, "/", notification(5000), token=token)[0] == 401
        assert request(loaded, "/api/jobs", b'{"prefix": "s3://media/audio-input/"}', token=token)[0] == 401
        assert request(loaded, "/api/status", token=token)[0] == 401
        assert request(loaded, "/metrics", token=token)[0] == 401
    assert request(loaded, "/?token=wrong-token-0123456789", notification(5000), token=None)[0] == 401
    assert get_json(loaded, "/api/status")["counts"] == before
    assert request(loaded, f"/?token={TOKEN}", notification(5001), token=None)[0] == 200  # the emitters' way


def _raw(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").split(":")
    return socket.create_connection((host, int(port)), timeout=10)


def _reply_status(sock: socket.socket) -> int:
    head = sock.recv(4096).decode(errors="replace")
    return int(head.split(" ")[1]) if head.startswith("HTTP/1.1 ") else 0


def _send_100_mb(url: str, chunked: bool) -> int:
    """Stream a 100 MB body (announced, or chunked without a length) until the service answers."""
    sock = _raw(url)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {100 << 20}"
    sock.sendall(f"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n{framing}\r\n\r\n".encode())
    chunk = b"x" * (1 << 20)
    try:
        for _ in range(100):
            if select.select([sock], [], [], 0)[0]:
                break  # the service answered: read what it said
            sock.sendall(b"100000\r\n" + chunk + b"\r\n" if chunked else chunk)
        sock.sendall(b"0\r\n\r\n" if chunked else b"")
    except OSError:
        pass  # the service answered and closed
    try:
        return _reply_status(sock)
    finally:
        sock.close()


def test_a_100_mb_body_gets_413_while_healthz_answers(loaded):
    with HealthProbe(loaded) as probe:
        assert _send_100_mb(loaded, chunked=False) == 413  # refused on its Content-Length, unread
        assert _send_100_mb(loaded, chunked=True) == 413  # refused once 8 MiB have streamed in
    assert probe.answers > 0 and probe.slowest < 1.0


def test_clients_sending_a_byte_a_second_are_timed_out_while_healthz_answers(loaded):
    body_sock, head_sock = _raw(loaded), _raw(loaded)
    head = f"POST / HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\nContent-Length: 100\r\n\r\n".encode()
    body_sock.sendall(head)
    statuses = {}
    with HealthProbe(loaded) as probe:
        for n in range(8):  # --request-timeout 3: both are cut off well before 8 s
            for name, sock, data in (("body", body_sock, b"{"), ("headers", head_sock, head[n : n + 1])):
                if name in statuses:
                    continue
                if select.select([sock], [], [], 0)[0]:  # the service spoke (or hung up): read what
                    try:
                        reply = sock.recv(4096)
                    except ConnectionResetError:  # it hung up on bytes it had not read
                        reply = b""
                    statuses[name] = int(reply.split(b" ")[1]) if reply.startswith(b"HTTP/1.1 ") else "closed"
                    continue
                if n < 3:  # a byte a second until the cut-off is near: none sent into a socket being closed
                    sock.sendall(data)
            time.sleep(1)
    body_sock.close()
    head_sock.close()
    print(f"\nslow clients: {statuses}; slowest /healthz {probe.slowest:.3f} s")
    assert statuses == {"body": 408, "headers": "closed"}
    assert probe.answers >= 20 and probe.slowest < 1.0


def test_10000_malformed_bodies_get_400_and_are_dead_lettered_while_healthz_answers(loaded):
    before = get_json(loaded, "/api/status")
    garbage = [b"{not json %d" % n if n % 2 else b'{"hello": %d}' % n for n in range(10_000)]
    with HealthProbe(loaded) as probe:
        statuses, latencies, errors = post_all(loaded, garbage)
    p99 = statistics.quantiles(latencies, n=100)[98]
    print(f"\n10,000 malformed bodies: {len(errors)} connection errors, statuses {sorted(set(statuses))}, "
          f"p99 {p99 * 1000:.1f} ms; slowest /healthz {probe.slowest:.3f} s")  # fmt: skip
    assert errors == [] and statuses == [400] * 10_000
    after = get_json(loaded, "/api/status")
    assert after["dead_letters"] == before["dead_letters"] + 10_000 and after["counts"] == before["counts"]
    letters = get_json(loaded, "/api/dead-letters?limit=3")
    assert len(letters) == 3 and all(letter["error"] and letter["origin"] == "http:127.0.0.1/" for letter in letters)
    assert probe.slowest < 1.0
