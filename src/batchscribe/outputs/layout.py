"""Where each input's transcripts go (the one naming scheme: batchscribe/sinks/base.py).

`a/b/c.mp3` becomes `a/b/c.mp3.*`: the input's extension is kept, so `c.mp3` and `c.wav` never
share an output. The same relative name from two folders given directly gets `-2`, `-3`... in
order of full path (`c.mp3`, `c.mp3-2`).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import TypeVar

from batchscribe.inputs import InputFile
from batchscribe.names import fit_name

T = TypeVar("T", bound=InputFile)


def plan_stems(files: list[T]) -> dict[T, Path]:
    """Map each input to its output path without the format suffix, all distinct."""
    by_name: dict[str, list[T]] = defaultdict(list)
    for f in files:
        by_name[str(f.relative).casefold()].append(f)  # also safe on case-insensitive disks
    stems = {f: f.relative for f in files}
    for group in by_name.values():
        group.sort(key=lambda f: str(f.path.resolve()))
        for n, f in enumerate(group[1:], start=2):
            stems[f] = f.relative.with_name(f"{f.relative.name}-{n}")
    return stems


def output_path(output_dir: Path, stem: Path, fmt: str) -> Path:
    """`OUT/stem.fmt`; a name past the file system's limit is shortened (batchscribe.names.fit_name)."""
    return output_dir / stem.parent / fit_name(stem.name, f".{fmt}")
