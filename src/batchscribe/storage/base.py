"""What every store is and holds: a StoredObject, and the Store interface (a folder: local.py; an
S3 prefix: s3.py). Kept apart from objects.py, which opens either, so no module imports back."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional, Protocol


@dataclass(frozen=True)
class StoredObject:
    root: str  # the store's root URI, ending in '/'
    key: str
    version: str
    size: int
    version_id: Optional[str] = None  # S3's VersionId, in a bucket that keeps versions (stat only)

    @property
    def uri(self) -> str:
        return self.root + self.key


class Store(Protocol):
    root: str

    def list(self) -> Iterator[StoredObject]: ...

    def stat(self, key: str) -> StoredObject: ...

    def local_copy(self, key: str, folder: Path, seen: Optional[StoredObject] = None) -> Path:
        """The object as a local file (`seen`: exactly the content stat() returned, where the store can)."""
        ...

    def put_text(self, key: str, text: str) -> None: ...

    def read_text(self, key: str) -> str: ...
