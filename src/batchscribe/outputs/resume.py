"""Skip inputs already transcribed with the same content and settings.

After all of a file's outputs are written, a small stamp (`.NAME.batchscribe`) records the
source's sha256 and the settings; a re-run with both unchanged and every output present
skips the file, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from batchscribe.names import fit_name, text_key
from batchscribe.outputs.layout import output_path
from batchscribe.outputs.writers import write_atomic


def content_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def settings_key(settings: dict) -> str:
    return hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:16]


def _stamp_path(output_dir: Path, stem: Path) -> Path:
    return output_dir / stem.parent / fit_name(f".{stem.name}", ".batchscribe")


def is_done(output_dir: Path, stem: Path, formats: tuple[str, ...], sha256: str, key: str) -> bool:
    stamp = _stamp_path(output_dir, stem)
    try:
        recorded = json.loads(stamp.read_text())
    except (OSError, ValueError):
        return False
    return (
        recorded.get("sha256") == sha256
        and recorded.get("settings") == key
        and all(output_path(output_dir, stem, fmt).exists() for fmt in formats)
    )


def mark_done(output_dir: Path, stem: Path, source: Path, sha256: str, key: str) -> None:
    record = {"source": text_key(str(source)), "sha256": sha256, "settings": key}
    write_atomic(_stamp_path(output_dir, stem), json.dumps(record) + "\n")
