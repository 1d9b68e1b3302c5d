"""The AWS Batch commands: `job` (the container entrypoint) and `aws backfill`."""

from __future__ import annotations

import argparse
import logging
import os

from batchscribe.cli.options import (
    HelpFormatter,
    add_endpoint_option,
    add_logging_options,
    add_model_options,
    add_output_option,
    add_speaker_options,
    positive,
    speaker_args,
    transcribe_options,
)
from batchscribe.cli.terminal import setup_logging
from batchscribe.errors import OptionsError


def add_commands(commands) -> None:
    job = commands.add_parser(
        "job", help="AWS Batch entrypoint: transcribe one object or a manifest slice", formatter_class=HelpFormatter
    )
    job.add_argument("--bucket", help="the object's bucket (EventBridge passes it as Ref::bucket)")
    job.add_argument("--key", help="the object's key (Ref::key)")
    job.add_argument("--manifest", help="s3:// manifest of an array job (AWS_BATCH_JOB_ARRAY_INDEX picks the slice)")
    job.add_argument("--input", default=os.environ.get("BATCHSCRIBE_INPUT"),
                     help="s3://bucket/prefix/ the objects must be under (env BATCHSCRIBE_INPUT)")  # fmt: skip
    add_output_option(job, required=False, help="s3://bucket/prefix/ for transcripts (env BATCHSCRIBE_OUTPUT)")
    job.set_defaults(output=os.environ.get("BATCHSCRIBE_OUTPUT"))
    add_endpoint_option(job)
    add_model_options(job)
    add_logging_options(job)
    job.set_defaults(handler=_job)

    aws = commands.add_parser("aws", help="AWS helpers", formatter_class=HelpFormatter).add_subparsers(
        dest="aws_command", required=True
    )
    backfill = aws.add_parser(
        "backfill", help="submit an array job over the objects already in a prefix", formatter_class=HelpFormatter
    )
    backfill.add_argument("source", help="s3://bucket/prefix/")
    backfill.add_argument("--job-queue", required=True, help="the Batch job queue's ARN")
    backfill.add_argument("--job-definition", required=True, help="the Batch job definition's ARN")
    backfill.add_argument("--files-per-job", type=positive, default=50, help="files per array child (one model load)")
    backfill.add_argument("--manifests", required=True,
                          help="s3:// prefix the jobs can read manifests from (the stack's OutputBucket/batchscribe-manifests/)")  # noqa: E501  fmt: skip
    add_endpoint_option(backfill)
    add_speaker_options(backfill)  # handed to every child job's command
    backfill.set_defaults(handler=_backfill)


def _job(args: argparse.Namespace) -> int:
    from batchscribe.aws.batch_job import EXIT_BAD_INPUT, ObjectName, manifest_slice, run_job

    setup_logging(args)
    if not (args.input and args.output):
        raise OptionsError("give --input and --output (or BATCHSCRIBE_INPUT and BATCHSCRIBE_OUTPUT)")
    if args.manifest:
        objects = manifest_slice(args.manifest, args.endpoint_url)
    elif args.bucket and args.key:
        objects = [ObjectName(args.bucket, args.key)]
    else:
        logging.getLogger("batchscribe.job").error("nothing to do: give --bucket and --key, or --manifest")
        return EXIT_BAD_INPUT
    return run_job(objects, args.input, args.output, transcribe_options(args), args.endpoint_url)


def _backfill(args: argparse.Namespace) -> int:
    from batchscribe.aws.backfill import backfill

    jobs = backfill(args.source, args.job_queue, args.job_definition, args.files_per_job, args.manifests,
                    args.endpoint_url, job_args=speaker_args(args))  # fmt: skip
    for job in jobs:
        print(f"submitted {job.job_id}: {job.files} files in {job.array_size} job(s); manifest {job.manifest}")
    if not jobs:
        print(f"no media files under {args.source}")
    return 0
