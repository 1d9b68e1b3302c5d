"""Usage mistakes caught before the model loads or any audio is read, each named with what to do.

A mistake found after hours of transcription (an output folder that cannot be written, a
language code the model does not know) wastes the whole batch; these checks cost milliseconds.
"""

from __future__ import annotations

import errno
import uuid
from pathlib import Path

from batchscribe.errors import OptionsError, OutputError
from batchscribe.inputs import MEDIA_EXTENSIONS, InputFile, MissingInput
from batchscribe.names import shown

DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def check_language(language: str | None, task: str, multilingual: bool) -> None:
    """Raise OptionsError for a language code Whisper does not know, or one an English-only model
    cannot transcribe (or translate)."""
    if language is None:
        if not multilingual and task != "transcribe":
            raise OptionsError(f"this model is English-only: it cannot {task}; use a multilingual model such as base")
        return
    from faster_whisper.tokenizer import _LANGUAGE_CODES

    if language not in _LANGUAGE_CODES:
        raise OptionsError(
            f"--language {language!r} is not a language code Whisper knows; use one of "
            f"{', '.join(sorted(_LANGUAGE_CODES))} (or leave --language out to detect it per file)"
        )
    if not multilingual and (language != "en" or task != "transcribe"):
        raise OptionsError(
            f"this model is English-only: it cannot {task} '{language}' audio; "
            "use a multilingual model such as --model base"
        )


def check_inputs(specs: list[str], files: list[InputFile], missing: list[MissingInput]) -> list[str]:
    """Raise OptionsError when nothing at all can be transcribed (every path mistyped, every folder
    without media); return warnings for the folders that hold no media among others that do."""
    empty = [spec for spec in specs if Path(spec).is_dir() and not any(_under(f.path, Path(spec)) for f in files)]
    if files:
        return [f"{shown(spec)}: no media files in this folder" for spec in empty]
    problems = [shown(m.error) for m in missing] + [f"{shown(spec)}: no media files in this folder" for spec in empty]
    raise OptionsError(
        "nothing to transcribe: "
        + "; ".join(problems or ["no input given"])
        + f". Check the path; folders are searched (recursively) for {', '.join(sorted(MEDIA_EXTENSIONS))}"
    )


def _under(path: Path, folder: Path) -> bool:
    try:
        path.relative_to(folder)
        return True
    except ValueError:
        return False


def check_output_dir(folder: Path) -> None:
    """Create `folder` if needed and prove a file can be written there; raise OutputError if not."""
    probe = folder / f".batchscribe-write-test-{uuid.uuid4().hex[:8]}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with open(probe, "xb") as handle:
            handle.write(b"x")
    except OSError as error:
        remedy = (
            "free space and run again (finished files are skipped)"
            if disk_full(error)
            else "choose another -o/--output folder or make this one writable"
        )
        raise OutputError(
            f"{shown(folder)}: transcripts cannot be written there ({error.strerror or error}); {remedy}"
        ) from None
    finally:
        try:
            probe.unlink(missing_ok=True)
        except OSError:
            pass


def disk_full(error: BaseException | None) -> bool:
    """Whether `error`, or an error it arose from, says the disk (or quota) is full: an OSError, or
    SQLite's own words for it (its failed ROLLBACK after a full disk hides the first error)."""
    seen = 0
    while error is not None and seen < 8:
        if isinstance(error, OSError) and error.errno in DISK_FULL:
            return True
        if type(error).__name__ == "OperationalError" and "disk is full" in str(error):
            return True
        error, seen = error.__cause__ or error.__context__, seen + 1
    return False
