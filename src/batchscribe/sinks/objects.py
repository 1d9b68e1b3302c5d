"""An object store (a folder or an S3 prefix, storage/) as a result sink: what the worker and
`batchscribe job` write.

Transcripts go to `NAME.FORMAT` below the store's root, each object whole (a folder writes the
set all or nothing; S3 has no multi-object write, so the stamp, written last, is what makes a
set count as done). The stamp `.NAME.batchscribe` records the source object's identity (its ETag:
sinks.base.identity_of), the settings and the formats stored: a duplicate event or a retried Batch job finds it
and skips the object (one GET; the transcripts themselves are not asked for, so a transcript deleted
by hand beside its stamp is not noticed: delete the stamp too to have the source transcribed again).

A failure is recorded in the same stamp object, next to the file (never in a shared
`failures.jsonl`, which concurrent jobs writing to one prefix would overwrite); a later success
replaces it. A failure never replaces a stamp that says the same source content is stored (with
any settings): a worker whose lease passed to another that stored the set, or a run with other
settings, must not erase a valid stamp (the stamp is read just before; a failure written in the
instant between another's write and that read is the one race left, and costs one transcription).
"""

from __future__ import annotations

import logging

from batchscribe.errors import InputError
from batchscribe.names import shown
from batchscribe.sinks.base import (
    Failure,
    SettingsKeys,
    done_record,
    failed_record,
    matching_record,
    same_identity,
    stamp_name,
    stored_record,
)
from batchscribe.storage.keys import output_key
from batchscribe.storage.base import Store

log = logging.getLogger("batchscribe")


class ObjectSink:
    def __init__(self, store: Store):
        self.store = store
        self.where = store.root

    def stamp(self, name: str) -> str:
        """The text of `name`'s stamp (what was transcribed, or why it failed); "" when there is none."""
        try:
            return self.store.read_text(stamp_name(name))
        except InputError:
            return ""

    def is_done(self, name: str, identity: str, keys: SettingsKeys, formats: tuple[str, ...]) -> bool:
        recorded = matching_record(self.stamp(name), identity, keys)
        return recorded is not None and set(formats) <= set(recorded.get("formats", ()))

    def write(self, name: str, texts: dict[str, str], source: str, identity: str, key: str) -> dict[str, str]:
        keyed = {output_key(name, fmt): text for fmt, text in texts.items()}
        put_texts = getattr(self.store, "put_texts", None)
        if put_texts is not None:  # a folder: the set all or nothing
            put_texts(keyed)
        else:
            for object_key, text in keyed.items():
                self.store.put_text(object_key, text)
        self.store.put_text(stamp_name(name), done_record(source, identity, key, tuple(texts)))
        return {fmt: self.store.root + output_key(name, fmt) for fmt in texts}

    def record_failures(self, failures: list[Failure]) -> None:
        for failure in failures:
            if failure.name is None:
                continue
            try:
                stored = stored_record(self.stamp(failure.name))
                if stored is not None and same_identity(stored, failure.identity):
                    log.info("%s: its transcripts for this content are stored (by another worker or run); "
                             "the stamp is kept, not replaced by this failure: %s", failure.source,
                             shown(failure.error))  # fmt: skip
                    continue
                self.store.put_text(stamp_name(failure.name), failed_record(failure.source, failure.identity,
                                                                            shown(failure.error)))  # fmt: skip
            except Exception as error:
                log.warning("%s: the failure could not be recorded beside it (%s): %s", failure.source, error,
                            shown(failure.error))  # fmt: skip
