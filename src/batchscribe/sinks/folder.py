"""A local folder as a result sink: what `transcribe -o FOLDER` writes.

Each source's set is written all or nothing (outputs/writers.write_set), then its stamp. The run's
failures are listed in `FOLDER/failures.jsonl` (one folder, one run at a time: a re-run replaces
it, and removes it when nothing failed).

Folders written before the one naming scheme (`c.txt` + `.c.batchscribe`, with `c.mp3.txt` only
when two inputs shared a stem) are still recognised: a source whose old-style set and stamp match
its content and settings is skipped, not transcribed again.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path, PurePath

from batchscribe.inputs import MEDIA_EXTENSIONS
from batchscribe.names import fit_name, shown, text_key
from batchscribe.outputs.layout import output_path
from batchscribe.outputs.writers import write_atomic, write_set
from batchscribe.sinks.base import STAMP_SUFFIX, Failure, SettingsKeys, done_record, matching_record

FAILURES_FILE = "failures.jsonl"

log = logging.getLogger("batchscribe")


class FolderSink:
    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self.where = shown(self.folder)

    def _stamp(self, stem: PurePath) -> Path:
        return self.folder / stem.parent / fit_name(f".{stem.name}", STAMP_SUFFIX)

    def _set_done(self, stem: PurePath, identity: str, keys: SettingsKeys, formats: tuple[str, ...]) -> bool:
        try:
            text = self._stamp(stem).read_text(encoding="utf-8")
        except (OSError, ValueError):
            return False
        return matching_record(text, identity, keys) is not None and all(
            output_path(self.folder, Path(stem), fmt).exists() for fmt in formats
        )

    def is_done(self, name: str, identity: str, keys: SettingsKeys, formats: tuple[str, ...]) -> bool:
        stem = PurePath(name)
        if self._set_done(stem, identity, keys, formats):
            return True
        # `transcribe` wrote `c.txt` for `c.mp3` before; only for a name that is a media file's own: the
        # second `c.mp3` from another root is `c.mp3-2` (suffix `.mp3-2`), never the old `c` set
        if stem.suffix.lower() not in MEDIA_EXTENSIONS:
            return False
        return self._set_done(stem.with_suffix(""), identity, keys, formats)

    def write(self, name: str, texts: dict[str, str], source: str, identity: str, key: str) -> dict[str, str]:
        """Every format or none, then the stamp that lets a re-run skip the source; returns format ->
        the file's path. Raises OSError."""
        stem = Path(name)
        outputs = {fmt: output_path(self.folder, stem, fmt) for fmt in texts}
        write_set({outputs[fmt]: text for fmt, text in texts.items()})
        write_atomic(self._stamp(stem), done_record(text_key(source), identity, key, tuple(texts)))
        return {fmt: str(path) for fmt, path in outputs.items()}

    def record_failures(self, failures: list[Failure]) -> None:
        """`failures.jsonl`, one line per failed source, or none when nothing failed. A full or
        read-only disk gets a warning naming the failures instead of an exception."""
        path = self.folder / FAILURES_FILE
        try:
            if failures:
                lines = "".join(
                    json.dumps({"input": text_key(f.source), "error": shown(f.error)}, ensure_ascii=False) + "\n"
                    for f in failures
                )
                write_atomic(path, lines)
            else:
                path.unlink(missing_ok=True)
        except OSError as error:
            log.warning("%s could not be written (%s); the failed files were: %s", shown(path), error.strerror or error,
                        "; ".join(shown(f.error) for f in failures))  # fmt: skip
