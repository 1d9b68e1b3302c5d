"""S3 end to end on real servers over loopback: SeaweedFS for storage (backfill and webhook events),
moto in server mode for the AWS path (S3 -> EventBridge rule -> SQS -> worker)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import boto3
import pytest
from conftest import LIBRISPEECH, REPO, reference, wer
from services import CREDENTIALS, free_port, moto_server, seaweedfs, wait_http

from batchscribe.jobs.stores import open_job_store

pytestmark = pytest.mark.e2e
FILES = sorted(LIBRISPEECH.glob("*.flac"))[:5]
SEED_PATTERN = {"source": ["aws.s3"], "detail-type": ["Object Created"],
                "detail": {"bucket": {"name": ["media"]}, "object": {"key": [{"prefix": "audio-input/"}]}}}  # fmt: skip
ROUTE = ("--input", "s3://media/audio-input/", "-o", "s3://media/transcription-output/")


def cli(*args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, **CREDENTIALS, "PYTHONPATH": str(REPO / "src")}
    return subprocess.run([sys.executable, "-m", "batchscribe", *args], capture_output=True, text=True, env=env,
                          timeout=timeout)  # fmt: skip


def client(service: str, endpoint: str):
    keys = {"aws_access_key_id": CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "aws_secret_access_key": CREDENTIALS["AWS_SECRET_ACCESS_KEY"]}  # fmt: skip
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1", **keys)


def upload(s3, files: list[Path], prefix: str = "audio-input/talks/") -> list[str]:
    keys = []
    for path in files:
        s3.upload_file(str(path), "media", prefix + path.name)
        keys.append(prefix + path.name)
    return keys


def assert_transcripts(s3, files: list[Path], prefix: str = "transcription-output/talks/") -> None:
    hypotheses = []
    for path in files:
        for fmt in ("txt", "srt", "vtt", "json"):
            body = s3.get_object(Bucket="media", Key=f"{prefix}{path.name}.{fmt}")["Body"].read().decode()
            if fmt == "txt":
                hypotheses.append(body)
            if fmt == "json":
                assert json.loads(body)["source"] == f"s3://media/audio-input/talks/{path.name}"
    assert wer([reference(f"librispeech/test-other/{p.name}") for p in files], hypotheses) <= 0.16


@pytest.fixture(scope="module")
def seaweed(tmp_path_factory):
    with seaweedfs(tmp_path_factory.mktemp("seaweedfs")) as endpoint:
        client("s3", endpoint).create_bucket(Bucket="media")
        yield endpoint


def test_backfill_from_a_bucket_then_workers_write_next_to_it(seaweed, tmp_path):
    s3 = client("s3", seaweed)
    upload(s3, FILES[:3])
    s3.put_object(Bucket="media", Key="audio-input/talks/broken.mp3", Body=os.urandom(4000))
    s3.put_object(Bucket="media", Key="audio-input/readme.txt", Body=b"not audio")
    store = ("--store", str(tmp_path / "jobs.db"), "--endpoint-url", seaweed)
    submitted = cli("submit", "s3://media/audio-input/", "-o", "s3://media/transcription-output/", *store)
    assert "4 queued, 0 already known" in submitted.stdout, submitted.stderr
    worked = cli("worker", *store, "--exit-when-idle", "--max-attempts", "2", "--retry-backoff", "0.1")
    assert worked.returncode == 0, worked.stderr
    assert_transcripts(s3, FILES[:3])
    (dead,) = open_job_store(tmp_path / "jobs.db").jobs("dead")
    assert dead.source_uri == "s3://media/audio-input/talks/broken.mp3" and "broken.mp3" in dead.last_error
    listed = s3.list_objects_v2(Bucket="media", Prefix="transcription-output/")["Contents"]
    outputs = [item["Key"] for item in listed if not item["Key"].rsplit("/", 1)[-1].startswith(".")]  # less stamps
    assert not any("broken" in key for key in outputs), "no output for a file that failed"
    again = cli("submit", "s3://media/audio-input/", "-o", "s3://media/transcription-output/", *store)
    assert "0 queued, 4 already known" in again.stdout  # outputs are never picked up as inputs either


def test_webhook_takes_pushed_notifications_once_and_dead_letters_garbage(seaweed, tmp_path):
    s3 = client("s3", seaweed)
    keys = upload(s3, FILES[3:5], prefix="audio-input/talks/")
    port = free_port()
    store = ("--store", str(tmp_path / "jobs.db"), "--endpoint-url", seaweed)
    env = {**os.environ, **CREDENTIALS, "PYTHONPATH": str(REPO / "src")}
    server = subprocess.Popen([sys.executable, "-m", "batchscribe", "serve", *ROUTE, "--port", str(port), *store],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_http(url + "healthz", 60)
        records = [{"eventName": "ObjectCreated:Put", "s3": {"bucket": {"name": "media"}, "object": {
            "key": key.replace(" ", "+"), "eTag": s3.head_object(Bucket="media", Key=key)["ETag"].strip('"')}}}
            for key in keys]  # fmt: skip
        for _ in range(2):  # every notification delivered twice
            reply = post(url, json.dumps({"Records": records}))
            assert reply[0] == 200
        assert post(url, "{not json")[0] == 400
    finally:
        server.terminate()
        server.wait(timeout=30)
    store_file = open_job_store(tmp_path / "jobs.db")
    assert len(store_file.jobs()) == 2 and len(store_file.dead_letters()) == 1
    assert cli("worker", *store, "--exit-when-idle").returncode == 0
    assert_transcripts(s3, FILES[3:5])


def post(url: str, body: str) -> tuple[int, dict]:
    request = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def test_eventbridge_rule_to_sqs_to_worker_copes_with_emulator_noise(tmp_path):
    with moto_server() as endpoint:
        s3, sqs, events = client("s3", endpoint), client("sqs", endpoint), client("events", endpoint)
        s3.create_bucket(Bucket="media")
        eventbridge_on = {"EventBridgeConfiguration": {}}
        s3.put_bucket_notification_configuration(Bucket="media", NotificationConfiguration=eventbridge_on)
        queue = sqs.create_queue(QueueName="transcribe-events")["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        events.put_rule(Name="audio-uploaded", EventPattern=json.dumps(SEED_PATTERN))
        transformer = {"InputPathsMap": {"bucket": "$.detail.bucket.name", "key": "$.detail.object.key"},
                       "InputTemplate": '{"bucket": <bucket>, "key": <key>}'}  # fmt: skip
        events.put_targets(Rule="audio-uploaded", Targets=[{"Id": "q", "Arn": arn, "InputTransformer": transformer}])
        files = FILES[:3]
        upload(s3, files)
        upload(s3, files[:2])  # the same content again: new events, same object versions
        multipart = FILES[3]  # completing a multipart upload: moto announces it twice
        key = f"audio-input/talks/{multipart.name}"
        upload_id = s3.create_multipart_upload(Bucket="media", Key=key)["UploadId"]
        part = s3.upload_part(Bucket="media", Key=key, UploadId=upload_id, PartNumber=1, Body=multipart.read_bytes())
        s3.complete_multipart_upload(Bucket="media", Key=key, UploadId=upload_id,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": part["ETag"]}]})  # fmt: skip
        files = [*files, multipart]
        s3.put_object_tagging(Bucket="media", Key=f"audio-input/talks/{files[0].name}",
                              Tagging={"TagSet": [{"Key": "team", "Value": "a"}]})  # fmt: skip
        s3.upload_file(str(FILES[0]), "media", "elsewhere/ignored.flac")  # outside the prefix
        sqs.send_message(QueueUrl=queue, MessageBody="this is not an event")
        sqs.send_message(QueueUrl=queue, MessageBody=json.dumps({"Records": [{"eventName": "ObjectCreated:Put"}]}))
        store = ("--store", str(tmp_path / "jobs.db"), "--endpoint-url", endpoint)
        worked = cli("worker", "--events", "sqs://transcribe-events", *ROUTE, *store, "--exit-when-idle")
        assert worked.returncode == 0, worked.stderr
        assert_transcripts(s3, files)
        jobs = open_job_store(tmp_path / "jobs.db")
        assert sorted(job.key for job in jobs.jobs()) == sorted(f"talks/{p.name}" for p in files)  # no duplicates
        assert {job.state for job in jobs.jobs()} == {"succeeded"}
        assert len(jobs.dead_letters()) == 2
        assert sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])[
            "Attributes"]["ApproximateNumberOfMessages"] == "0"  # fmt: skip
