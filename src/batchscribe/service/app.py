"""The service `batchscribe serve` runs: the webhook, the JSON API, the web view, /metrics and /healthz.

One ASGI app (FastAPI on Starlette) served by uvicorn. Request handling never loads a model:
this process takes events and answers questions; workers transcribe.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Optional

from fastapi import FastAPI, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse, Response

from batchscribe import __version__
from batchscribe.jobs.store import JobStore
from batchscribe.service import api, views
from batchscribe.service.auth import TokenAuth
from batchscribe.service.context import Context
from batchscribe.service.limits import BodyLimits, HeaderTimeoutH11
from batchscribe.service.metrics import RequestMetrics, ServiceMetrics
from batchscribe.triggers.route import Route
from batchscribe.triggers.webhook import MAX_BODY, take_post

log = logging.getLogger("batchscribe.service")


@dataclass(frozen=True)
class ServiceOptions:
    token: Optional[str] = None  # None: no authentication (serve allows that on loopback only)
    max_body: int = MAX_BODY  # bytes; larger bodies get 413 before they are read
    request_timeout: float = 30.0  # seconds a request's headers, and then its body, may take to arrive
    endpoint_url: Optional[str] = None  # S3-compatible endpoint, to read transcripts


def create_app(route: Route, jobs: JobStore, options: ServiceOptions = ServiceOptions()) -> FastAPI:
    """The whole service as an ASGI app (uvicorn, or any ASGI server, runs it)."""
    app = FastAPI(
        title="batchscribe",
        version=__version__,
        description="Event-driven batch transcription: S3 event webhook, jobs, transcripts. "
        "Every path but /healthz needs the token: `Authorization: Bearer TOKEN`, or `?token=TOKEN`.",
        docs_url=None,  # Swagger UI and ReDoc load scripts from CDNs; /openapi.json is the description
        redoc_url=None,
    )
    metrics = ServiceMetrics(jobs)
    app.state.context = Context(route, jobs, options.endpoint_url)
    app.state.token = options.token
    health = ThreadPoolExecutor(max_workers=1, thread_name_prefix="healthz")  # never queued behind busy routes

    @app.get("/healthz", tags=["service"], summary="200 while the job store answers (no token needed)")
    async def healthz() -> dict:
        unfinished = await asyncio.get_running_loop().run_in_executor(health, jobs.unfinished)
        return {"unfinished_jobs": unfinished}

    @app.get("/metrics", tags=["service"], summary="Prometheus metrics (text exposition format)")
    def prometheus() -> Response:
        body, content_type = metrics.exposition()
        return Response(body, media_type=content_type)

    app.include_router(api.router)
    app.include_router(views.router)

    @app.post("/", tags=["events"], summary="S3 event notifications, EventBridge events, or {bucket, key}")
    async def webhook(request: Request) -> JSONResponse:
        return await _take(request, route, jobs, metrics)

    @app.post("/{path:path}", include_in_schema=False)
    async def webhook_any_path(request: Request) -> JSONResponse:
        return await _take(request, route, jobs, metrics)  # as before: emitters post to whatever path they were given

    app.add_middleware(BodyLimits, max_body=options.max_body, timeout=options.request_timeout)
    app.add_middleware(TokenAuth, token=options.token)
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app


async def _take(request: Request, route: Route, jobs: JobStore, metrics: ServiceMetrics) -> JSONResponse:
    body = await request.body()
    # the path, never the query: it may hold the token
    origin = f"http:{request.client.host if request.client else '?'}{request.url.path}"
    status, document = await run_in_threadpool(take_post, body, origin, route, jobs)
    if status == 200:
        metrics.events.inc(document["announced"])
        metrics.queued.inc(document["queued"])
    elif status == 400:
        metrics.dead_lettered.inc()
    return JSONResponse(document, status_code=status)


def serve(app: FastAPI, host: str, port: int, options: ServiceOptions) -> None:
    """Run the app with uvicorn until SIGTERM or Ctrl-C (uvicorn handles both: in-flight requests finish)."""
    import uvicorn

    protocol = type("Protocol", (HeaderTimeoutH11,), {"header_timeout": options.request_timeout})
    config = uvicorn.Config(
        app, host=host, port=port, http=protocol, log_level="warning", timeout_keep_alive=5,
        timeout_graceful_shutdown=10, server_header=False,
    )  # fmt: skip
    uvicorn.Server(config).run()
