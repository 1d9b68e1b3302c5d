"""Content digests: the sha256 that identifies a local file's content (a local store's object version,
a `transcribe` source's identity in its resume stamp: batchscribe/sinks/)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def content_sha256(path: Path) -> str:
    """The hex sha256 of the file's bytes, read in 4 MiB chunks. Raises OSError."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
