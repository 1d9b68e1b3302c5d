"""A local folder as a store (the embedded default).

A file's version is its content's sha256, not its modification time: the same recording copied
in again (`cp` gives it a new mtime) is the same version, so it is one job, transcribed once.
Hashes are cached by (size, mtime, inode), so a folder watch polling every second reads a file
again only when it changed.

A key is the file's path below the folder as text: undecodable bytes and control characters
in a name are `%XX` (batchscribe.names), so every name the OS can hold is a valid key for the job
store, a log line or an S3 destination, and maps back to the very same file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator, Optional

from batchscribe.errors import InputError
from batchscribe.inputs import walk
from batchscribe.names import fit_name, path_name, text_key
from batchscribe.digests import content_sha256
from batchscribe.outputs.writers import write_atomic, write_set
from batchscribe.storage.keys import checked_key
from batchscribe.storage.base import StoredObject


class LocalStore:
    def __init__(self, folder: Path):
        self.folder = folder.resolve()
        self.root = self.folder.as_uri() + "/"
        self._hashes: dict[Path, tuple[tuple[int, int, int], str]] = {}  # path -> (stat, sha256)

    def _path(self, key: str) -> Path:
        """The file a key names: keys are file names as text (batchscribe.names.text_key)."""
        path = self.folder / path_name(checked_key(key))
        if not path.resolve().is_relative_to(self.folder):  # a symlinked folder pointing outside
            raise InputError(f"{key}: resolves outside {self.folder}")
        return path

    def _object(self, path: Path, stat: os.stat_result) -> StoredObject:
        key = text_key(path.relative_to(self.folder).as_posix())
        return StoredObject(self.root, key, self._version(path, stat), stat.st_size)

    def _version(self, path: Path, stat: os.stat_result) -> str:
        signature = (stat.st_size, stat.st_mtime_ns, stat.st_ino)
        cached = self._hashes.get(path)
        if cached is None or cached[0] != signature:
            try:
                cached = self._hashes[path] = (signature, "sha256:" + content_sha256(path))
            except PermissionError:  # still a job, which then fails saying why
                return f"{stat.st_size}-{stat.st_mtime_ns}"
        return cached[1]

    def list(self) -> Iterator[StoredObject]:
        for path in walk(self.folder):
            try:
                yield self._object(path, path.stat())
            except FileNotFoundError:  # removed while listing
                continue

    def stat(self, key: str) -> StoredObject:
        path = self._path(key)
        try:
            return self._object(path, path.stat())
        except FileNotFoundError:
            raise InputError(f"{self.root}{key}: no such file") from None

    def local_copy(self, key: str, folder: Path, seen: Optional[StoredObject] = None) -> Path:
        """A local file needs no copy: the pipeline reads it where it is (`seen` is not checked: a
        folder's stamp holds the sha256 the pipeline computes from what it reads)."""
        return self._path(key)

    def put_text(self, key: str, text: str) -> None:
        path = self._path(key)
        write_atomic(path.with_name(fit_name(path.stem, path.suffix)), text)

    def put_texts(self, texts: dict[str, str]) -> None:
        """Several objects all or nothing (a transcript set is never half there)."""
        paths = {self._path(key): text for key, text in texts.items()}
        write_set({path.with_name(fit_name(path.stem, path.suffix)): text for path, text in paths.items()})

    def read_text(self, key: str) -> str:
        """A stored text (a transcript); InputError if there is none."""
        path = self._path(key)
        try:
            return path.with_name(fit_name(path.stem, path.suffix)).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise InputError(f"{self.root}{key}: no such file") from None
