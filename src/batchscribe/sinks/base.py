"""The result sink interface, the naming scheme and the resume stamp every sink shares.

Naming (every front end): a source's transcripts are its relative name plus `.FORMAT`, the
source's extension kept (`a/c.mp3` -> `a/c.mp3.txt`): an event-driven front end sees one file at
a time and cannot know that `c.wav` arrives later, so keeping the extension is the only rule under
which two inputs never share an output. (`transcribe` adds `-2`, `-3` for the same relative name
from two roots given directly, in order of full path: outputs/layout.py.)

Resume: after a source's whole set is written, a stamp `.NAME.batchscribe` beside it records the
source's identity and the settings key. A later run with both unchanged (and every requested format
present) skips the source. The identity (identity_of) is the content's sha256 for a local file and
the object's ETag for an object, from every front end alike, so a duplicate event, a retried job or
a worker after `job` never transcribes the same content twice.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Optional, Protocol

STAMP_SUFFIX = ".batchscribe"


def settings_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class SettingsKeys:
    """The key a new stamp records, and the keys that also count as the same settings.

    `accepted` holds the key of stamps written before backend and batch size were part of it
    (they change a transcript, but a folder transcribed then must not be transcribed again)."""

    current: str
    accepted: tuple[str, ...] = ()

    @classmethod
    def of(cls, settings: dict, runtime: dict) -> "SettingsKeys":
        """`settings`: what changed a transcript before (TranscribeOptions.output_settings());
        `runtime`: what also changes it (backend, batch size), new in the key."""
        return cls(settings_key({**settings, **runtime}), (settings_key(settings),))

    def matches(self, recorded: Optional[str]) -> bool:
        return recorded is not None and (recorded == self.current or recorded in self.accepted)


def stamp_name(name: str) -> str:
    """`a/c.mp3` -> `a/.c.mp3.batchscribe` (before fitting to the file system's name limit)."""
    path = PurePosixPath(name)
    return str(path.with_name(f".{path.name}{STAMP_SUFFIX}"))


def done_record(source: str, identity: str, key: str, formats: tuple[str, ...]) -> str:
    record: dict = {"source": source, "identity": identity, "settings": key, "formats": list(formats)}
    if not identity.startswith("etag:"):
        record["sha256"] = identity  # the field stamps had before objects had one
    return json.dumps(record, ensure_ascii=False) + "\n"


def failed_record(source: str, identity: str, error: str) -> str:
    return json.dumps({"source": source, "identity": identity, "error": error}, ensure_ascii=False) + "\n"


def stored_record(text: Optional[str]) -> Optional[dict]:
    """A stamp's record of a stored set (source, identity, settings, formats); None for no stamp,
    a failure's record or text that is not one."""
    try:
        recorded = json.loads(text) if text else None
    except ValueError:
        return None
    return recorded if isinstance(recorded, dict) and "error" not in recorded else None


def same_identity(recorded: dict, identity: str) -> bool:
    """Whether a stored record is for this source identity. `etag:E version:V` is what `job` recorded
    in a versioned bucket before the one rule (identity_of): its ETag decides."""
    return str(recorded.get("identity", recorded.get("sha256"))).split(" version:", 1)[0] == identity


def matching_record(text: Optional[str], identity: str, keys: SettingsKeys) -> Optional[dict]:
    """A stamp's record if it says this identity was transcribed with these settings, else None."""
    recorded = stored_record(text)
    if recorded is None or not same_identity(recorded, identity) or not keys.matches(recorded.get("settings")):
        return None
    return recorded


class Versioned(Protocol):
    """What names a stored object's content: storage.base.StoredObject, or a queued Job."""

    @property
    def version(self) -> str: ...  # an S3 object's ETag, or a local file's `sha256:HEX`


def identity_of(stored: Versioned) -> str:
    """A stored object as a source identity in a stamp, the one rule of every front end: a local
    file's `sha256:HEX` is the bare hex a `transcribe` stamp holds; an S3 object is `etag:E`.

    The VersionId is left out on purpose: a listing (backfill, a worker's scan) and a bucket event
    do not carry it, only a HEAD does, so a stamp holding it would differ between `job` and the
    worker for the same object. The ETag alone changes with the content, which is what decides the
    transcript; two versions with the same content share it and rightly share one transcript."""
    version = stored.version
    if version.startswith("sha256:"):
        return version.removeprefix("sha256:")
    return f"etag:{version.strip(chr(34))}"


@dataclass(frozen=True)
class Failure:
    """A source that failed: `source` as shown (a path or URI), `name` its output name if it got one."""

    source: str
    error: str
    name: Optional[str] = None
    identity: str = ""


class ResultSink(Protocol):
    """Where the transcripts of a run's sources go. `name` is a source's relative name (`a/c.mp3`);
    `identity` its content (sha256 hex) or object identity (`etag:E`): identity_of."""

    where: str  # the root, as shown to a person

    def is_done(self, name: str, identity: str, keys: SettingsKeys, formats: tuple[str, ...]) -> bool:
        """Whether `name`'s transcripts in every one of `formats` are stored for this identity and settings."""
        ...

    def write(self, name: str, texts: dict[str, str], source: str, identity: str, key: str) -> dict[str, str]:
        """Store every format in `texts` (format -> text) or none, then the stamp; returns format ->
        where it was stored. Raises OSError (a folder) or the store's error."""
        ...

    def record_failures(self, failures: list[Failure]) -> None:
        """Record this run's failed sources (an empty list clears the record of an earlier run
        where the sink keeps one per run); never raises."""
        ...
