"""Object keys that are safe to map onto a file system or another bucket.

Keys come from events written by someone else; a key like `../../etc/x` or `/abs` must never
make an output land outside its output root. Any other name is a valid key: spaces, quotes, a
leading dash, CJK, emoji, a line break (local file names arrive here as batchscribe.names.text_key).
"""

from __future__ import annotations

from pathlib import PurePosixPath

from batchscribe.errors import InputError
from batchscribe.inputs import MEDIA_EXTENSIONS


class UnsafeKeyError(InputError):
    """An object key that could escape its root or is not a plain name."""


def checked_key(key: str) -> str:
    """Return `key` if it is a plain relative key; raise UnsafeKeyError otherwise."""
    if not key:
        raise UnsafeKeyError("empty object key")
    if "\x00" in key:  # no file system can hold it; any other character is a valid name (batchscribe.names)
        raise UnsafeKeyError(f"object key {key!r} contains a NUL character")
    if key.startswith("/") or "\\" in key:
        raise UnsafeKeyError(f"object key {key!r} is absolute or uses backslashes")
    if any(part in ("..", ".") for part in key.split("/")):
        raise UnsafeKeyError(f"object key {key!r} contains '.' or '..' segments")
    if key.endswith("/"):
        raise UnsafeKeyError(f"object key {key!r} names a folder, not a file")
    return key


def is_media(key: str) -> bool:
    name = PurePosixPath(key).name
    return not name.startswith(".") and PurePosixPath(name).suffix.lower() in MEDIA_EXTENSIONS


def output_key(source_key: str, fmt: str) -> str:
    """`a/b.mp3` -> `a/b.mp3.txt`: the source's extension is kept, so `b.mp3` and `b.wav` arriving
    at different times can never overwrite each other's transcripts."""
    return f"{checked_key(source_key)}.{fmt}"
