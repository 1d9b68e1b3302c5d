"""The web view: server-rendered HTML pages (Jinja2 templates, no JavaScript) over the same store.

/ (counts, throughput chart, failures), /jobs?state=... (a page of jobs), /jobs/N (one job, its
reason, a retry button), /jobs/N/transcript (segments with times), /login and /logout.
Pages need the token like the API; the login form trades it for an HttpOnly, SameSite cookie.
"""

from __future__ import annotations

import datetime
from pathlib import Path
from typing import Annotated, Optional
from urllib.parse import parse_qs

import jinja2
from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse, RedirectResponse

from batchscribe.jobs.store import STATES
from batchscribe.service.auth import COOKIE, token_matches
from batchscribe.service.context import Context, NotFound

router = APIRouter(include_in_schema=False)
PAGE = 50
CHART_HOURS = 12
_templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"), autoescape=True, trim_blocks=True
)


def context(request: Request) -> Context:
    return request.app.state.context


Ctx = Annotated[Context, Depends(context)]


def _clock(epoch: Optional[float]) -> str:
    return "" if epoch is None else datetime.datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M:%S")


def _timecode(seconds: float) -> str:
    minutes, rest = divmod(seconds, 60)
    return f"{int(minutes // 60):d}:{int(minutes % 60):02d}:{rest:06.3f}"


def _html(name: str, code: int = 200, **values) -> HTMLResponse:
    page = _templates.get_template(name).render(clock=_clock, timecode=_timecode, states=STATES, **values)
    return HTMLResponse(page, status_code=code)


def _chart(buckets: list[tuple[float, int, float]], width: int = 720, height: int = 140) -> dict:
    """Bars for files finished per hour, as SVG coordinates (the template draws them)."""
    top = max([files for _, files, _ in buckets] + [1])
    step = width / max(len(buckets), 1)
    bars = []
    for n, (start, files, audio) in enumerate(buckets):
        tall = (height - 34) * files / top  # room above the tallest bar for its count
        bars.append({"x": round(n * step + 2, 1), "y": round(height - 16 - tall, 1), "w": round(step - 4, 1),
                     "h": round(tall, 1), "files": files, "audio_minutes": round(audio / 60, 1),
                     "hour": datetime.datetime.fromtimestamp(start).strftime("%H:00")})  # fmt: skip
    return {"bars": bars, "width": width, "height": height, "top": top}


@router.get("/", response_class=HTMLResponse)
def home(ctx: Ctx) -> HTMLResponse:
    status = ctx.jobs.status()
    failed = ctx.jobs.jobs("dead", PAGE) + ctx.jobs.jobs("retrying", PAGE)
    chart = _chart(ctx.jobs.throughput(CHART_HOURS))
    return _html("home.html", status=status, failed=failed, chart=chart, source=ctx.route.source.root,
                 dest=ctx.route.dest_root, hours=CHART_HOURS)  # fmt: skip


@router.get("/jobs", response_class=HTMLResponse)
def jobs(ctx: Ctx, state: Optional[str] = None, page: Annotated[int, Query(ge=0)] = 0) -> HTMLResponse:
    if state is not None and state not in STATES:
        raise HTTPException(404, f"no state {state!r}")
    rows = ctx.jobs.jobs(state, PAGE + 1, page * PAGE)
    return _html("jobs.html", jobs=rows[:PAGE], state=state, page=page, more=len(rows) > PAGE)


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job(job_id: int, ctx: Ctx) -> HTMLResponse:
    try:
        return _html("job.html", job=ctx.job(job_id))
    except NotFound as error:
        return _html("missing.html", 404, message=str(error))


@router.post("/jobs/retry-dead")
def retry_dead(ctx: Ctx) -> RedirectResponse:
    ctx.jobs.retry(dead=True)
    return RedirectResponse("/", status_code=303)


@router.post("/jobs/{job_id}/retry")
def retry(job_id: int, ctx: Ctx) -> RedirectResponse:
    ctx.jobs.retry([job_id])
    return RedirectResponse(f"/jobs/{job_id}", status_code=303)


@router.get("/jobs/{job_id}/transcript", response_class=HTMLResponse)
def transcript(job_id: int, ctx: Ctx) -> HTMLResponse:
    try:
        job, document = ctx.job(job_id), ctx.transcript_document(job_id)
    except NotFound as error:
        return _html("missing.html", 404, message=str(error))
    speakers = any(segment.get("speaker") for segment in document.get("segments", []))
    return _html("transcript.html", job=job, document=document, speakers=speakers)


@router.get("/login", response_class=HTMLResponse)
def login_form() -> HTMLResponse:
    return _html("login.html")


@router.post("/login")
async def login(request: Request) -> HTMLResponse:
    form = parse_qs((await request.body()).decode("utf-8", errors="replace"))
    offered = (form.get("token") or [""])[0].strip()
    token = request.app.state.token
    if token is not None and not token_matches(offered, token):
        return await run_in_threadpool(_html, "login.html", 401, error="That token is not the service's.")
    reply = RedirectResponse("/", status_code=303)
    if token is not None:
        reply.set_cookie(COOKIE, offered, httponly=True, samesite="strict", secure=request.url.scheme == "https",
                         max_age=7 * 24 * 3600)  # fmt: skip
    return reply


@router.post("/logout")
def logout() -> RedirectResponse:
    reply = RedirectResponse("/login", status_code=303)
    reply.delete_cookie(COOKIE)
    return reply
