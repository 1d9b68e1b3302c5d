"""Where each input's transcripts go, with name collisions resolved predictably.

`a/b/c.mp3` becomes `a/b/c.*`. When two inputs would share a name (`c.mp3` and `c.wav`),
all of them keep their extension (`c.mp3.*`, `c.wav.*`); if that still collides (the same
name from two folders given directly) they get `-2`, `-3`... in order of their full path.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Iterable, TypeVar

from batchscribe.inputs import InputFile
from batchscribe.names import fit_name

T = TypeVar("T", bound=InputFile)


def _groups(stems: dict[T, Path]) -> Iterable[list[T]]:
    by_stem: dict[str, list[T]] = defaultdict(list)
    for item, stem in stems.items():
        by_stem[str(stem).casefold()].append(item)  # also safe on case-insensitive disks
    return [sorted(group, key=lambda f: str(f.path.resolve())) for group in by_stem.values() if len(group) > 1]


def plan_stems(files: list[T]) -> dict[T, Path]:
    """Map each input to its output path without the format suffix, all distinct."""
    stems = {f: f.relative.with_suffix("") for f in files}
    for group in _groups(stems):
        for f in group:
            stems[f] = f.relative
    for group in _groups(stems):
        for n, f in enumerate(group[1:], start=2):
            stems[f] = f.relative.with_name(f"{f.relative.name}-{n}")
    return stems


def output_path(output_dir: Path, stem: Path, fmt: str) -> Path:
    """`OUT/stem.fmt`; a name past the file system's limit is shortened (batchscribe.names.fit_name)."""
    return output_dir / stem.parent / fit_name(stem.name, f".{fmt}")
