"""Real S3 bucket notifications: Ceph radosgw pushes them to `batchscribe serve` (as MinIO or Ceph do
on-premises), a worker transcribes, transcripts land in the output prefix. Slow to start (~15 s):
marked `ceph`, so `pytest -m "not ceph"` skips it; CI runs it."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import boto3
import pytest
from conftest import LIBRISPEECH, REPO, reference, wer
from services import ceph_available, ceph_radosgw, free_port, wait_http

from batchscribe.jobs.stores import open_job_store

pytestmark = [pytest.mark.e2e, pytest.mark.ceph]
CEPH_KEYS = {"AWS_ACCESS_KEY_ID": "cephak", "AWS_SECRET_ACCESS_KEY": "cephsk", "AWS_DEFAULT_REGION": "us-east-1"}


def test_ceph_pushes_notifications_that_become_transcripts(tmp_path):
    if not ceph_available():
        if os.environ.get("CI"):
            pytest.fail("CI must run this: apt-get install -y radosgw ceph-mon ceph-osd")
        pytest.skip("Ceph is not installed (apt-get install -y radosgw ceph-mon ceph-osd)")
    files = sorted(LIBRISPEECH.glob("*.flac"))[20:23]
    (tmp_path / "ceph").mkdir()
    with ceph_radosgw(tmp_path / "ceph") as endpoint:
        session = boto3.session.Session(aws_access_key_id="cephak", aws_secret_access_key="cephsk",
                                        region_name="us-east-1")  # fmt: skip
        s3, sns = session.client("s3", endpoint_url=endpoint), session.client("sns", endpoint_url=endpoint)
        s3.create_bucket(Bucket="media")
        port = free_port()
        topic = sns.create_topic(Name="audio", Attributes={"push-endpoint": f"http://127.0.0.1:{port}/"})["TopicArn"]
        rule = {"Key": {"FilterRules": [{"Name": "prefix", "Value": "audio-input/"}]}}
        s3.put_bucket_notification_configuration(Bucket="media", NotificationConfiguration={"TopicConfigurations": [
            {"Id": "audio", "TopicArn": topic, "Events": ["s3:ObjectCreated:*"], "Filter": rule}]})  # fmt: skip
        env = {**os.environ, **CEPH_KEYS, "PYTHONPATH": str(REPO / "src")}
        store = ("--store", str(tmp_path / "jobs.db"), "--endpoint-url", endpoint)
        route = ("--input", "s3://media/audio-input/", "-o", "s3://media/transcription-output/")
        server = subprocess.Popen([sys.executable, "-m", "batchscribe", "serve", *route, "--port", str(port), *store],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)  # fmt: skip
        try:
            wait_http(f"http://127.0.0.1:{port}/healthz", 60)
            for path in files:
                s3.upload_file(str(path), "media", f"audio-input/{path.name}")
            s3.put_object(Bucket="media", Key="not-watched/x.flac", Body=files[0].read_bytes())
            jobs = open_job_store(tmp_path / "jobs.db")
            deadline = time.monotonic() + 60
            while len(jobs.jobs()) < len(files) and time.monotonic() < deadline:
                time.sleep(0.3)
            worker = subprocess.run([sys.executable, "-m", "batchscribe", "worker", *store, "--exit-when-idle"],
                                    capture_output=True, text=True, env=env, timeout=600)  # fmt: skip
            assert worker.returncode == 0, worker.stderr
        finally:
            server.terminate()
            server.wait(timeout=30)
        assert sorted(job.key for job in jobs.jobs()) == sorted(p.name for p in files)
        hypotheses = [
            s3.get_object(Bucket="media", Key=f"transcription-output/{p.name}.txt")["Body"].read().decode()
            for p in files
        ]
        assert wer([reference(f"librispeech/test-other/{p.name}") for p in files], hypotheses) <= 0.16
