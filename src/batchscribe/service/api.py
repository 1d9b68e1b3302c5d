"""The JSON API under /api: submit, list, inspect and retry jobs, status, transcripts.

Described by the OpenAPI document at /openapi.json. Every path needs the token (see auth.py).
"""

from __future__ import annotations

from typing import Annotated, Literal, Optional

from fastapi import APIRouter, Depends, HTTPException, Query, Request
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from batchscribe.jobs.store import STATES, Job
from batchscribe.options import FORMATS
from batchscribe.service.context import Context, NotFound

router = APIRouter(prefix="/api", tags=["jobs"])
LETTER_PREVIEW = 2000  # characters of a dead letter's body listed (the store keeps up to 64 KiB)
State = Literal["queued", "running", "retrying", "succeeded", "dead"]
Format = Literal[FORMATS]  # type: ignore[valid-type]  # whatever the writers offer (txt, srt, vtt, json, ...)
assert set(State.__args__) == set(STATES)  # type: ignore[attr-defined]


def context(request: Request) -> Context:
    return request.app.state.context


Ctx = Annotated[Context, Depends(context)]


class JobOut(BaseModel):
    id: int
    source_uri: str
    version: str = Field(description="the object version (ETag, or size-mtime for a local file)")
    dest_root: str
    state: State
    attempts: int = Field(description="failed attempts so far (a job is dead after --max-attempts)")
    lost_leases: int = Field(description="times a worker stopped (killed) while holding it")
    last_error: Optional[str]
    audio_seconds: Optional[float]
    created: float = Field(description="epoch seconds")
    updated: float
    finished: Optional[float]

    @classmethod
    def of(cls, job: Job) -> "JobOut":
        fields = {name: getattr(job, name) for name in cls.model_fields if name != "source_uri"}
        return cls(source_uri=job.source_uri, **fields)


class JobPage(BaseModel):
    jobs: list[JobOut]
    next_offset: Optional[int] = Field(description="offset of the next page; null on the last")


class Submission(BaseModel):
    uris: list[str] = Field(default=[], description="objects under the source: s3://bucket/prefix/key or paths")
    prefix: Optional[str] = Field(default=None, description="enqueue every media file under this part of the source")


class SubmitResult(BaseModel):
    queued: int
    known: int = Field(description="already in the store (this version was seen before)")
    skipped: list[str] = Field(description="what was not enqueued, and why")


class ThroughputBucket(BaseModel):
    start: float = Field(description="bucket start, epoch seconds (hour buckets)")
    files: int
    audio_seconds: float


class StatusOut(BaseModel):
    counts: dict[str, int]
    dead_letters: int
    oldest_queued_seconds: Optional[float]
    finished_last_hour: int
    audio_seconds_last_hour: float
    throughput: list[ThroughputBucket]


class Retried(BaseModel):
    retried: int


class DeadLetterOut(BaseModel):
    id: int
    received: float
    origin: str
    error: str
    body: str


@router.post("/jobs", response_model=SubmitResult, summary="Enqueue objects by URI, or every one under a prefix")
def submit(submission: Submission, ctx: Ctx) -> SubmitResult:
    if not submission.uris and submission.prefix is None:
        raise HTTPException(422, "give uris, a prefix, or both")
    done = ctx.submit(submission.uris, submission.prefix)
    return SubmitResult(queued=done.queued, known=done.known, skipped=done.skipped)


@router.get("/jobs", response_model=JobPage, summary="Jobs in id order, optionally of one state, a page at a time")
def list_jobs(
    ctx: Ctx,
    state: Optional[State] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JobPage:
    jobs = ctx.jobs.jobs(state, limit + 1, offset)
    following = offset + limit if len(jobs) > limit else None
    return JobPage(jobs=[JobOut.of(job) for job in jobs[:limit]], next_offset=following)


@router.get("/jobs/{job_id}", response_model=JobOut, summary="One job: its state, attempts and last error")
def get_job(job_id: int, ctx: Ctx) -> JobOut:
    try:
        return JobOut.of(ctx.job(job_id))
    except NotFound as error:
        raise HTTPException(404, str(error)) from None


@router.post("/jobs/{job_id}/retry", response_model=Retried, summary="Queue a dead (or retrying) job again")
def retry_job(job_id: int, ctx: Ctx) -> Retried:
    return Retried(retried=ctx.jobs.retry([job_id]))


@router.post("/jobs/retry-dead", response_model=Retried, summary="Queue every dead job again")
def retry_dead(ctx: Ctx) -> Retried:
    return Retried(retried=ctx.jobs.retry(dead=True))


@router.get(
    "/jobs/{job_id}/transcript",
    response_class=PlainTextResponse,
    summary="A finished job's transcript in one of the formats the worker wrote",
    responses={200: {"content": {"text/plain": {}, "application/json": {}}}, 404: {"description": "none (yet)"}},
)
def transcript(ctx: Ctx, job_id: int, format: Format = "txt"):  # noqa: A002
    try:
        text = ctx.transcript(job_id, format)
    except NotFound as error:
        raise HTTPException(404, str(error)) from None
    media = {"json": "application/json", "vtt": "text/vtt"}.get(format, "text/plain")
    return PlainTextResponse(text, media_type=f"{media}; charset=utf-8")


@router.get("/status", response_model=StatusOut, summary="Counts by state, throughput, oldest queued job")
def status(ctx: Ctx, hours: Annotated[int, Query(ge=1, le=24 * 14)] = 24) -> StatusOut:
    now = ctx.jobs.status()
    buckets = [ThroughputBucket(start=s, files=f, audio_seconds=a) for s, f, a in ctx.jobs.throughput(hours)]
    return StatusOut(
        counts=now.counts, dead_letters=now.dead_letters, oldest_queued_seconds=now.oldest_queued_seconds,
        finished_last_hour=now.finished_last_hour, audio_seconds_last_hour=now.audio_seconds_last_hour,
        throughput=buckets,
    )  # fmt: skip


@router.get("/dead-letters", response_model=list[DeadLetterOut], summary="Posted bodies that were not events")
def dead_letters(ctx: Ctx, limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[DeadLetterOut]:
    letters = ctx.jobs.dead_letters(limit)
    return [DeadLetterOut(**{**vars(letter), "body": letter.body[:LETTER_PREVIEW]}) for letter in letters]
