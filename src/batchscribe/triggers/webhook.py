"""An HTTP endpoint that takes S3 event notifications pushed by MinIO, Ceph or anything alike.

POST a notification (`{"Records": [...]}`, or an EventBridge event) to any path: 200 with what
was queued, or 400 with why the body was not understood (it is dead-lettered as well).
GET /healthz answers 200 while the job store is reachable.
"""

from __future__ import annotations

import json
import logging
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from batchscribe.jobs.store import JobStore
from batchscribe.triggers.intake import take_message
from batchscribe.triggers.route import Route

log = logging.getLogger("batchscribe.triggers")
MAX_BODY = 8 << 20


def webhook_server(route: Route, jobs: JobStore, host: str = "127.0.0.1", port: int = 8080) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, code: int, document: dict) -> None:
            body = json.dumps(document).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path.rstrip("/") == "/healthz":
                self._reply(200, {"unfinished_jobs": jobs.unfinished()})
            else:
                self._reply(404, {"error": "POST S3 event notifications here; GET /healthz for health"})

        def do_POST(self) -> None:  # noqa: N802
            length = int(self.headers.get("Content-Length") or 0)
            if length > MAX_BODY:
                self._reply(413, {"error": f"body over {MAX_BODY} bytes"})
                return
            body = self.rfile.read(length).decode("utf-8", errors="replace")
            try:
                intake = take_message(body, f"http:{self.client_address[0]}{self.path}", route, jobs)
            except Exception as error:  # the sender will retry: say so with a 503
                log.exception("could not take a pushed event")
                self._reply(503, {"error": str(error)})
                return
            if intake.malformed:
                self._reply(400, {"error": "not an S3 event notification; dead-lettered"})
            else:
                self._reply(200, {"announced": intake.announced, "queued": intake.queued})

        def log_message(self, format: str, *args) -> None:  # noqa: A002
            log.debug("%s " + format, self.client_address[0], *args)

    return _Server((host, port), Handler)


class _Server(ThreadingHTTPServer):
    request_queue_size = 128  # socketserver's 5 resets connections when many senders post at once
    daemon_threads = True
