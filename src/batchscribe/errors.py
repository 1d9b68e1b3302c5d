"""Exceptions with messages a user can act on."""


class BatchscribeError(Exception):
    """Base class for every error batchscribe reports to the user."""


class InputError(BatchscribeError):
    """An input file cannot be transcribed (missing, unreadable, not audio, corrupt)."""


class ModelError(BatchscribeError):
    """The requested model cannot be found, installed, verified or run."""


class OptionsError(BatchscribeError):
    """A combination of options cannot work (e.g. translating with an English-only model)."""


class OutputError(BatchscribeError):
    """Transcripts cannot be written where asked (a read-only folder, a full disk)."""


def is_bad_input(error: BaseException) -> bool:
    """Will this failure recur on the same bytes? True for bad input (corrupt, not audio, no audio
    stream, empty, missing): retrying cannot help, so a job goes dead at once. False for trouble
    in the environment (storage or network errors, permission, out of memory, a killed worker, a
    model that fails), which a later attempt may not meet. An InputError raised from an OSError
    other than a missing file is the disk or the network, not the file."""
    if not isinstance(error, InputError):
        return False
    cause = error.__cause__
    return not isinstance(cause, (OSError, MemoryError)) or isinstance(cause, FileNotFoundError)
