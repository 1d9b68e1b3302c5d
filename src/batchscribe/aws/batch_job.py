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
from batchscribe.outputs.writers import render
from batchscribe.pipeline import Transcriber
from batchscribe.results import FailureKind
from batchscribe.storage.keys import checked_key
from batchscribe.storage.objects import open_store, put_transcript, split_uri

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
    code = getattr(error, "response", {}).get("Error", {}).get("Code", "")
    return isinstance(error, InputError) or code in ("404", "NoSuchKey", "NotFound")


def run_job(
    objects: list[ObjectName],
    input_root: str,
    output_root: str,
    options: TranscribeOptions,
    endpoint_url: Optional[str] = None,
) -> int:
    """Transcribe `objects` (all of them packed together, one model load) into `output_root`."""
    source = open_store(input_root, endpoint_url)
    destination = open_store(output_root, endpoint_url)
    _, bucket, prefix = split_uri(source.root)
    bad, transient = 0, 0
    with tempfile.TemporaryDirectory(prefix="batchscribe-job-") as scratch:
        local: dict[str, str] = {}  # local path -> key relative to the input root
        for n, name in enumerate(objects):
            try:
                if name.bucket != bucket or not name.key.startswith(prefix):
                    raise InputError(f"s3://{name.bucket}/{name.key} is not under the input {source.root}")
                relative = checked_key(name.key[len(prefix) :])
                local[str(source.local_copy(relative, Path(scratch) / str(n)))] = relative
            except Exception as error:
                missing = _is_missing(error)
                bad, transient = bad + missing, transient + (not missing)
                log.error("%s: %s", f"s3://{name.bucket}/{name.key}", error)
        if local:
            transcriber = Transcriber(options)
            summary = transcriber.run(list(local), None)
            for result in summary.results:
                relative = local[result.source]
                if result.transcript is None:  # bad input recurs (3); a read or model failure may not (1)
                    if result.failure is FailureKind.TRANSIENT:
                        transient += 1
                    else:
                        bad += 1
                    log.error("%s", (result.error or "failed").replace(result.source, source.root + relative))
                    continue
                texts = render(result.transcript, summary.model, source.root + relative, options)
                for note in result.transcript.audio.notes():  # audio tracks left out, a corrected downmix
                    log.warning("%s: %s", source.root + relative, note)
                try:
                    put_transcript(destination, relative, texts)
                    log.info("done: %s", source.root + relative)
                except Exception as error:
                    transient += 1
                    log.error("%s: cannot store its transcript: %s", source.root + relative, error)
    return EXIT_RETRY if transient else EXIT_BAD_INPUT if bad else EXIT_OK
