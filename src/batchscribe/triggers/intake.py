"""One message in, jobs out: the step every event source shares (SQS, webhook).

A message that is not an event is dead-lettered with its reason and never retried; an event
for an object we cannot look up right now is left for redelivery.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from batchscribe.errors import InputError
from batchscribe.jobs.store import JobStore
from batchscribe.triggers.events import MalformedEvent, parse_events
from batchscribe.triggers.route import Route

log = logging.getLogger("batchscribe.triggers")
KEPT_BODY = 64 << 10  # characters of a dead-lettered body kept: enough to see what it was, not a flood's size


@dataclass(frozen=True)
class Intake:
    announced: int = 0
    queued: int = 0
    malformed: bool = False


def take_message(body: str, origin: str, route: Route, jobs: JobStore) -> Intake:
    try:
        events = parse_events(body)
    except MalformedEvent as error:
        log.warning("dead-lettered a message from %s: %s", origin, error)
        jobs.dead_letter(origin, body[:KEPT_BODY], str(error))
        return Intake(malformed=True)
    queued = 0
    for created in events:
        try:
            obj = route.event_object(created)
        except InputError as error:  # an unsafe or vanished key: nothing to transcribe
            log.warning("ignored an event from %s: %s", origin, error)
            continue
        if obj is not None and route.enqueue(jobs, obj):
            queued += 1
    return Intake(announced=len(events), queued=queued)
