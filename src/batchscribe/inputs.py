"""Turn the INPUT arguments (files, folders, globs) into the list of files to transcribe."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

# Folders are scanned for these; a file named directly is tried whatever its name.
MEDIA_EXTENSIONS = frozenset(
    ".wav .wave .flac .mp3 .m4a .aac .ogg .oga .opus .webm .mp4 .m4v .mov .mkv .avi .aiff .aif .aifc "
    ".wma .amr .3gp .caf .au .ac3 .mka .mpga .mpeg .ts".split()
)


@dataclass(frozen=True)
class InputFile:
    path: Path
    relative: Path  # where its outputs go below the output folder (extension kept)


@dataclass(frozen=True)
class MissingInput:
    spec: str
    error: str


def walk(folder: Path) -> Iterator[Path]:
    """Every file below `folder` in name order; hidden folders (`.batchscribe/`) are skipped and
    symlinked folders not followed. The one folder walk: `transcribe`'s inputs and a LocalStore's list."""
    for root, dirs, files in os.walk(folder, followlinks=False):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            yield Path(root) / name


def _scan(folder: Path) -> list[InputFile]:
    return [
        InputFile(path, path.relative_to(folder))
        for path in walk(folder)
        if not path.name.startswith(".") and path.suffix.lower() in MEDIA_EXTENSIONS
    ]


def _glob_base(spec: str) -> Path:
    """The folder a glob is rooted at: its longest prefix without wildcards."""
    parts = Path(spec).parts
    literal = []
    for part in parts:
        if glob.has_magic(part):
            break
        literal.append(part)
    return Path(*literal) if literal else Path(".")


def discover(specs: list[str]) -> tuple[list[InputFile], list[MissingInput]]:
    files: list[InputFile] = []
    missing: list[MissingInput] = []
    for spec in specs:
        path = Path(spec)
        if glob.has_magic(spec) and not path.exists():
            base = _glob_base(spec)
            matches = sorted(glob.glob(spec, recursive=True))
            if not matches:
                missing.append(MissingInput(spec, f"{spec}: no files match this pattern"))
            for match in map(Path, matches):
                if match.is_dir():
                    files.extend(InputFile(f.path, match.relative_to(base) / f.relative) for f in _scan(match))
                elif match.suffix.lower() in MEDIA_EXTENSIONS:
                    files.append(InputFile(match, match.relative_to(base)))
        elif path.is_dir():
            files.extend(_scan(path))
        elif path.exists() or path.is_symlink():
            files.append(InputFile(path, Path(path.name)))
        else:
            missing.append(MissingInput(spec, f"{spec}: no such file or directory"))
    return _unique(files), missing


def _unique(files: list[InputFile]) -> list[InputFile]:
    seen: set[Path] = set()
    unique = []
    for file in files:
        key = file.path.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(file)
    return unique
