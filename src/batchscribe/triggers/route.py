"""Which objects become jobs, and where their transcripts go: the seed's EventBridge rule as code.

A route joins a source (folder or `s3://bucket/prefix/`) to a destination (which may be the
source itself: transcripts next to the audio). It admits media objects under the source, never
anything under a destination nested in it (so outputs cannot loop back in), and never a key
that could escape the destination root.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Optional

from batchscribe.errors import InputError
from batchscribe.jobs.store import JobStore
from batchscribe.storage.keys import checked_key, is_media
from batchscribe.storage.objects import Store, StoredObject, open_store, split_uri
from batchscribe.triggers.events import ObjectCreated

log = logging.getLogger("batchscribe.triggers")


@dataclass
class Route:
    source: Store
    dest_root: str

    @classmethod
    def open(cls, source_uri: str, dest_uri: str, endpoint_url: Optional[str] = None) -> "Route":
        return cls(open_store(source_uri, endpoint_url), open_store(dest_uri, endpoint_url).root)

    def wants(self, key: str) -> bool:
        """A media file under the source and outside a destination nested in it."""
        nested = self.dest_root != self.source.root and self.dest_root.startswith(self.source.root)
        if (nested and (self.source.root + key).startswith(self.dest_root)) or not is_media(key):
            return False
        checked_key(key)
        return True

    def event_object(self, created: ObjectCreated) -> Optional[StoredObject]:
        """The object an event announces, if this route wants it (its version from the event, else a HEAD)."""
        scheme, bucket, prefix = split_uri(self.source.root)
        if scheme != "s3" or created.bucket != bucket or not created.key.startswith(prefix):
            return None
        key = created.key[len(prefix) :]
        if not self.wants(key):
            return None
        if created.etag:
            return StoredObject(self.source.root, key, created.etag.strip('"'), created.size or 0)
        return self.source.stat(key)

    def enqueue(self, jobs: JobStore, obj: StoredObject) -> bool:
        added = jobs.enqueue(obj, self.dest_root) is not None
        log.info("%s %s", "queued" if added else "already known", obj.uri)
        return added

    def backfill(self, jobs: JobStore) -> tuple[int, int]:
        """Enqueue every wanted object already in the source: (newly queued, already known)."""
        added = known = 0
        for obj in self.source.list():
            try:
                wanted = self.wants(obj.key)
            except InputError as error:
                log.warning("skipped: %s", error)
                continue
            if wanted:
                if self.enqueue(jobs, obj):
                    added += 1
                else:
                    known += 1
        return added, known
