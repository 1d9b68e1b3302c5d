"""What the webhook answers a pushed message: S3 event notifications from MinIO, Ceph or anything alike.

A notification (`{"Records": [...]}`, an EventBridge event, or the seed's `{bucket, key}`) gets
200 with what was queued; a body that is not one gets 400 with why, and is dead-lettered; a
store that cannot take it right now gets 503, so the sender retries. The HTTP side (limits,
authentication) is batchscribe.service's; this module holds the semantics, free of any framework.
"""

from __future__ import annotations

import logging

from batchscribe.jobs.store import JobStore
from batchscribe.triggers.intake import take_message
from batchscribe.triggers.route import Route

log = logging.getLogger("batchscribe.triggers")
MAX_BODY = 8 << 20  # bytes; S3 notifications are a few KB, SNS caps messages at 256 KB


def take_post(body: bytes, origin: str, route: Route, jobs: JobStore) -> tuple[int, dict]:
    """(HTTP status, JSON document) for one POSTed body received from `origin`."""
    try:
        intake = take_message(body.decode("utf-8", errors="replace"), origin, route, jobs)
    except Exception as error:  # the sender will retry: say so with a 503
        log.exception("could not take a pushed event")
        return 503, {"error": str(error)}
    if intake.malformed:
        return 400, {"error": "not an S3 event notification; dead-lettered"}
    return 200, {"announced": intake.announced, "queued": intake.queued}
