"""Checking model files against their sha256, once: a stamp file remembers files already verified.

Hashing a model takes seconds (base: 290 MiB), so a file whose size and modification time are
those recorded when it last passed is taken as verified; any change to it (a reinstall, an edit,
a truncated copy) changes one of them and the sha256 is computed again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path


def sha256_of(paths: list[Path]) -> str:
    """The sha256 (hex) of the files' bytes, one after the other."""
    digest = hashlib.sha256()
    for path in paths:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 22):
                digest.update(chunk)
    return digest.hexdigest()


def file_stamp(paths: list[Path]) -> str:
    """Cheap identity of files: their paths, sizes and modification times (ns)."""
    return ";".join(f"{p}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in paths)


def is_verified(marker: Path, paths: list[Path]) -> bool:
    """Whether `marker` records `paths` exactly as they are now (see mark_verified)."""
    return marker.exists() and all(p.exists() for p in paths) and marker.read_text() == file_stamp(paths)


def mark_verified(marker: Path, paths: list[Path]) -> None:
    """Record that `paths`, as they are now, passed their checksum."""
    marker.parent.mkdir(parents=True, exist_ok=True)
    marker.write_text(file_stamp(paths))
