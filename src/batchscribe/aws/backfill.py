"""`batchscribe aws backfill`: one AWS Batch array job over the objects already in a prefix.

The object list goes into a manifest in S3; child i of the array transcribes entries
[i*N, (i+1)*N), so N files share each model load and each packed batch.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass
from typing import Optional, Sequence

from batchscribe.errors import OptionsError
from batchscribe.storage.keys import is_media
from batchscribe.storage.objects import split_uri

MAX_ARRAY_SIZE = 10_000  # AWS Batch's limit per array job


@dataclass(frozen=True)
class SubmittedJob:
    job_id: str
    manifest: str
    files: int
    array_size: int


def backfill(
    source_uri: str,
    job_queue: str,
    job_definition: str,
    files_per_job: int,
    manifest_prefix: str,
    endpoint_url: Optional[str] = None,
    job_args: Sequence[str] = (),
) -> list[SubmittedJob]:
    """Submit array jobs over the media under `source_uri`; `job_args` (e.g. `--speakers diarize`)
    are appended to every child's `batchscribe job` command, so the options travel with the jobs."""
    import boto3

    from batchscribe.storage.s3 import S3Store

    scheme, bucket, prefix = split_uri(source_uri)
    manifest_scheme, manifest_bucket, manifest_key_prefix = split_uri(manifest_prefix)
    if scheme != "s3" or manifest_scheme != "s3" or bucket is None or manifest_bucket is None:
        raise OptionsError("backfill reads an s3://bucket/prefix/ and writes its manifest to an s3:// prefix")
    store = S3Store(bucket, prefix, endpoint_url)
    keys = [store.prefix + obj.key for obj in store.list() if is_media(obj.key)]
    batch = boto3.client("batch", endpoint_url=endpoint_url or None)
    s3 = store.client
    per_manifest = files_per_job * MAX_ARRAY_SIZE
    submitted = []
    for start in range(0, len(keys), per_manifest):
        chunk = keys[start : start + per_manifest]
        stamp = f"{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}.json"
        folder = manifest_key_prefix.rstrip("/")
        name = f"{folder}/{stamp}" if folder else stamp
        document = {"files_per_job": files_per_job, "objects": [{"bucket": bucket, "key": key} for key in chunk]}
        s3.put_object(Bucket=manifest_bucket, Key=name, Body=json.dumps(document).encode())
        manifest = f"s3://{manifest_bucket}/{name}"
        size = math.ceil(len(chunk) / files_per_job)
        request = {
            "jobName": "batchscribe-backfill",
            "jobQueue": job_queue,
            "jobDefinition": job_definition,
            "containerOverrides": {"command": ["batchscribe", "job", "--manifest", manifest, *job_args]},
        }
        if size > 1:  # Batch's arrays have 2 to 10,000 children
            request["arrayProperties"] = {"size": size}
        job_id = batch.submit_job(**request)["jobId"]
        submitted.append(SubmittedJob(job_id, manifest, len(chunk), size))
    return submitted
