"""Prometheus metrics of the job system: the store's state (read at each scrape) and a worker's work.

Names follow Prometheus conventions: counters end in `_total`, durations are `_seconds`.
The store's gauges are the same from the service and from every worker (label them by the
scrape target); the counters and histograms are per worker process.
"""

from __future__ import annotations

import logging
from typing import Iterator, Optional

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from batchscribe.jobs.store import JobStore

log = logging.getLogger("batchscribe.worker")

# A file's time from claim to ack spans seconds (a short clip in a warm batch) to an hour (long
# recordings); a batch of 16 files likewise.
_DURATION_BUCKETS = (0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class StoreCollector(Collector):
    """Jobs by state, dead letters and the oldest queued job's age, read from the store at each scrape."""

    def __init__(self, store: JobStore):
        self.store = store

    def describe(self) -> Iterator[GaugeMetricFamily]:
        return iter(())  # nothing to check at registration: the store answers at scrape time

    def collect(self) -> Iterator[GaugeMetricFamily]:
        status = self.store.status()
        jobs = GaugeMetricFamily("batchscribe_jobs", "Jobs in the store by state", labels=["state"])
        for state, count in status.counts.items():
            jobs.add_metric([state], count)
        yield jobs
        yield GaugeMetricFamily(
            "batchscribe_dead_letters",
            "Messages that were not storage events, kept for a person",
            value=status.dead_letters,
        )
        yield GaugeMetricFamily(
            "batchscribe_oldest_queued_job_age_seconds",
            "How long the oldest queued job has waited (0 when none waits)",
            value=status.oldest_queued_seconds or 0.0,
        )


def failure_reason(error: str) -> str:
    """A failure's class, for the failed-jobs counter's `reason` label (bounded: a few values).

    Read from the worker's messages, which say where the attempt failed."""
    if "cannot be fetched" in error:
        return "fetch"
    if "cannot store its transcript" in error:
        return "output"
    if error.startswith("batch failed"):
        return "batch"  # the model or the machine, not the file
    if "without a result" in error:
        return "no_result"
    return "audio"  # the file itself: undecodable, empty, too long, ...


class WorkerMetrics:
    """What one worker process did: counters and histograms for Prometheus."""

    def __init__(self, registry: CollectorRegistry = REGISTRY):
        self.succeeded = Counter("batchscribe_jobs_succeeded_total", "Jobs transcribed and stored", registry=registry)
        self.failed = Counter(
            "batchscribe_jobs_failed_total", "Failed attempts, by reason class", ["reason"], registry=registry
        )
        for reason in ("fetch", "output", "batch", "no_result", "audio"):
            self.failed.labels(reason)  # present at 0 from the start, so rate() sees the first one
        self.audio = Counter(
            "batchscribe_audio_transcribed_seconds_total", "Seconds of audio transcribed", registry=registry
        )
        self.batch = Histogram(
            "batchscribe_batch_duration_seconds", "A claimed batch from claim to its last ack",
            buckets=_DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.file = Histogram(
            "batchscribe_file_duration_seconds", "A file from claim to its transcripts stored and acknowledged",
            buckets=_DURATION_BUCKETS, registry=registry,
        )  # fmt: skip
        self.model_load = Gauge(
            "batchscribe_model_load_seconds", "Time the worker took to load its model", registry=registry
        )

    def job_succeeded(self, seconds: float, audio_seconds: float) -> None:
        self.succeeded.inc()
        self.file.observe(seconds)
        self.audio.inc(max(audio_seconds, 0.0))

    def job_failed(self, error: str) -> None:
        self.failed.labels(failure_reason(error)).inc()

    def batch_done(self, seconds: float, model_load_seconds: float) -> None:
        self.batch.observe(seconds)
        if model_load_seconds:
            self.model_load.set(model_load_seconds)


_worker_metrics: Optional[WorkerMetrics] = None


def worker_metrics() -> WorkerMetrics:
    """This process's worker metrics (one set per process, as the default registry holds them)."""
    global _worker_metrics
    if _worker_metrics is None:
        _worker_metrics = WorkerMetrics()
    return _worker_metrics


def serve_worker_metrics(port: int, store: JobStore, host: str = "127.0.0.1") -> None:
    """Expose this process's metrics and the store's gauges at http://HOST:PORT/metrics (a daemon thread)."""
    worker_metrics()
    REGISTRY.register(StoreCollector(store))
    start_http_server(port, addr=host)
    log.info("metrics at http://%s:%d/metrics", host, port)
