"""The content hash that identifies a local source (the resume stamps themselves: batchscribe/sinks/)."""

from __future__ import annotations

import hashlib
from pathlib import Path


def content_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()
