"""Where a run's results go: one interface (base.ResultSink), a folder and an object store behind it.

Every front end (`transcribe`, the worker behind `run`/`worker`/`serve`, and `job` on AWS Batch)
hands the pipeline a sink; the sink owns the output names, the all-or-nothing write, the resume
stamp and the record of failures, so the three behave the same.
"""

from batchscribe.sinks.base import Failure, ResultSink, SettingsKeys, identity_of
from batchscribe.sinks.folder import FAILURES_FILE, FolderSink
from batchscribe.sinks.objects import ObjectSink

__all__ = [
    "FAILURES_FILE",
    "Failure",
    "FolderSink",
    "ObjectSink",
    "ResultSink",
    "SettingsKeys",
    "identity_of",
]
