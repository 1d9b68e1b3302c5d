"""`batchscribe job`: the AWS Batch container entrypoint, for one object or a slice of a manifest.

The exit code tells Batch whether another attempt can help (the job definition's retry
strategy reads it): 0 all transcribed; 3 some input is bad (corrupt, not audio, missing, outside
the input prefix) and the rest was transcribed; 1 anything else (storage or service trouble,
a model that cannot load), worth retrying.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from batchscribe.errors import InputError, OptionsError
from batchscribe.options import TranscribeOptions
from batchscribe.pipeline import SourceFile, Transcriber
from batchscribe.results import FailureKind
from batchscribe.sinks.base import SettingsKeys, identity_of
from batchscribe.sinks.objects import ObjectSink
from batchscribe.storage.keys import checked_key
from batchscribe.storage.objects import open_store, split_uri
from batchscribe.storage.s3 import is_not_found

EXIT_OK, EXIT_RETRY, EXIT_BAD_INPUT = 0, 1, 3
ARRAY_INDEX = "AWS_BATCH_JOB_ARRAY_INDEX"
log = logging.getLogger("batchscribe.job")


@dataclass(frozen=True)
class ObjectName:
    bucket: str
    key: str


def manifest_slice(manifest_uri: str, endpoint_url: Optional[str] = None) -> list[ObjectName]:
    """This array child's share of a backfill manifest ({"files_per_job": N, "objects": [...]})."""
    scheme, bucket, key = split_uri(manifest_uri)
    if scheme != "s3" or bucket is None:
        raise OptionsError(f"{manifest_uri}: a manifest is an s3:// object")
    from batchscribe.storage.s3 import s3_client

    document = json.loads(s3_client(endpoint_url).get_object(Bucket=bucket, Key=key)["Body"].read())
    per_job = int(document["files_per_job"])
    index = int(os.environ.get(ARRAY_INDEX, "0"))
    return [ObjectName(o["bucket"], o["key"]) for o in document["objects"][index * per_job : (index + 1) * per_job]]


def _is_missing(error: Exception) -> bool:
    return isinstance(error, InputError) or is_not_found(error)


def _is_done(sink: ObjectSink, name: str, identity: str, keys: SettingsKeys, formats: tuple[str, ...],
             uri: str) -> bool:  # fmt: skip
    """The sink's stamp says done; a stamp that cannot be read (a role without access, a store that
    fails now) is a warning and the object is transcribed anyway, as `transcribe` and the worker do:
    storing the result will tell whether the output prefix is usable."""
    try:
        return sink.is_done(name, identity, keys, formats)
    except Exception as error:
        log.warning("%s: cannot tell whether it is already transcribed (%s); transcribing it", uri, error)
        return False


def run_job(
    objects: list[ObjectName],
    input_root: str,
    output_root: str,
    options: TranscribeOptions,
    endpoint_url: Optional[str] = None,
    transcriber: Optional[Transcriber] = None,
) -> int:
    """Transcribe `objects` (all of them packed together, one model load) into `output_root`;
    `transcriber`: one made for `options` unless given (a test hands in one with a fake engine).

    An object whose transcripts are already stored for its content (its ETag: sinks.base.identity_of)
    and these settings is skipped before it is downloaded (the sink's stamp, sinks/objects.py): a duplicate
    event or a retry after the upload costs a HEAD and a GET, not a transcription."""
    source = open_store(input_root, endpoint_url)
    sink = ObjectSink(open_store(output_root, endpoint_url))
    _, bucket, prefix = split_uri(source.root)
    transcriber = transcriber or Transcriber(options)
    keys = transcriber.settings_keys()
    bad, transient, skipped, done = 0, 0, 0, 0
    with tempfile.TemporaryDirectory(prefix="batchscribe-job-") as scratch:
        sources: list[SourceFile] = []
        for n, name in enumerate(objects):
            uri = f"s3://{name.bucket}/{name.key}"
            try:
                if name.bucket != bucket or not name.key.startswith(prefix):
                    raise InputError(f"{uri} is not under the input {source.root}")
                relative = checked_key(name.key[len(prefix) :])
                stored = source.stat(relative)
                identity = identity_of(stored)
                if not options.overwrite and _is_done(sink, relative, identity, keys, options.formats, uri):
                    skipped += 1
                    log.info("%s: already transcribed (version %s, same settings); skipped", uri, identity)
                    continue
                path = source.local_copy(relative, Path(scratch) / str(n), stored)  # the content stat() saw
                shown = source.root + relative
                sources.append(SourceFile(path, relative, shown, identity, label=shown, resume_checked=True))
            except Exception as error:
                missing = _is_missing(error)
                bad, transient = bad + missing, transient + (not missing)
                log.error("%s: %s", uri, error)
        if sources:
            summary = transcriber.run(sources, sink)
            for result in summary.results:
                if result.status == "skipped":
                    skipped += 1
                elif result.transcript is None:  # bad input recurs (3); a read, model or store failure may not (1)
                    if result.failure is FailureKind.BAD_INPUT:
                        bad += 1
                    else:
                        transient += 1
                    log.error("%s", result.error or f"{result.source}: failed")
                else:
                    done += 1
                    for note in result.transcript.audio.notes():  # audio tracks left out, a corrected downmix
                        log.warning("%s: %s", result.source, note)
                    log.info("done: %s", result.source)
    log.info("%d transcribed, %d skipped (already transcribed), %d failed", done, skipped, bad + transient)
    return EXIT_RETRY if transient else EXIT_BAD_INPUT if bad else EXIT_OK
