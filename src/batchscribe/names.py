"""File names as text, and text as file names: any name the OS can hold, in every front end.

A POSIX file name is bytes. Python hands undecodable bytes (Latin-1 names copied from old
Windows or Samba shares) to us as lone surrogates (`os.fsdecode`'s surrogateescape), which
neither UTF-8 files, JSON, SQLite nor S3 keys can hold. The rule, in one place:

- On local disk, transcripts keep the input's exact bytes (`caf\\xe9.wav` -> `caf\\xe9.txt`).
- Wherever a name is text (JSON `source`, failures.jsonl, the terminal, logs, job-store keys,
  S3 keys), an undecodable byte is written `%XX` (`caf%E9.wav`), as is a control character
  (a newline in a name: `%0A`); a `%` already followed by two hex digits becomes `%25`, so
  `text_key` and `path_name` undo each other exactly. Every other name is unchanged.
- A name longer than the file system allows (255 bytes on most) once a suffix is added keeps
  its beginning and gets `~` plus 8 hex digits of its sha256 before the suffix.
"""

from __future__ import annotations

import hashlib
import os
import re

NAME_MAX = 255  # bytes in one path component on ext4, XFS, btrfs, tmpfs, APFS, NTFS (chars)

_UNSAFE = re.compile(r"[\udc80-\udcff\x00-\x1f\x7f]|%(?=[0-9A-Fa-f]{2})")
_ESCAPED = re.compile(r"%([0-9A-F]{2})")


def _escape(match: re.Match) -> str:
    char = match.group()
    if char == "%":
        return "%25"
    code = ord(char)
    return f"%{code - 0xDC00 if code >= 0xDC00 else code:02X}"


def text_key(name: str) -> str:
    """`name` (as os.fsdecode gives it) as plain, printable UTF-8 text; see the module rule."""
    return _UNSAFE.sub(_escape, name)


def path_name(key: str) -> str:
    """The file name `text_key` made `key` from (undecodable bytes as surrogates again).

    Only escapes `text_key` writes are undone (`%25`, control characters, bytes >= 0x80), so
    no key can gain a `/` or `..` here."""
    if "%" not in key:
        return key
    parts = []
    last = 0
    for match in _ESCAPED.finditer(key):
        value = int(match.group(1), 16)
        if value == 0x25 or value < 0x20 or value == 0x7F or value >= 0x80:
            parts.append(key[last : match.start()].encode("utf-8", "surrogateescape"))
            parts.append(bytes([value]))
            last = match.end()
    parts.append(key[last:].encode("utf-8", "surrogateescape"))
    return os.fsdecode(b"".join(parts))


_SURROGATE = re.compile(r"[\udc80-\udcff]")


def shown(text: object) -> str:
    """A message that may quote a file name, safe to print, log or write as UTF-8: undecodable
    bytes as `%XX`, the rest (line breaks of the message included) unchanged."""
    return _SURROGATE.sub(_escape, str(text))


def fit_name(name: str, suffix: str = "", limit: int = NAME_MAX) -> str:
    """`name + suffix`, shortened to at most `limit` bytes (see the module rule); the suffix is kept."""
    whole = name + suffix
    size = len(os.fsencode(whole))
    if size <= limit:
        return whole
    tag = "~" + hashlib.sha256(os.fsencode(name)).hexdigest()[:8]
    room = limit - len(os.fsencode(tag + suffix))
    head = name
    while len(os.fsencode(head)) > room:
        head = head[: max(len(head) - max((len(os.fsencode(head)) - room) // 4, 1), 0)]
    return head + tag + suffix
