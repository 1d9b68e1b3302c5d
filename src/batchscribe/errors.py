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
