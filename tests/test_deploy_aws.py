"""deploy/aws without an AWS account: the template linted, read and created in moto's CloudFormation,
its EventBridge rule matched against real-shaped events, its input transformer rendered into the
job definition's exact command and run against a real S3 server, and backfill's array jobs in moto Batch."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest
from cfnlint.decode import decode
from conftest import LIBRISPEECH, REPO, reference, wer
from services import CREDENTIALS, moto_server, seaweedfs

TEMPLATE = REPO / "deploy" / "aws" / "template.yaml"
DOCKERFILES = sorted((REPO / "deploy" / "docker").glob("Dockerfile.*"))
BIN = Path(sys.executable).parent
FILES = sorted(LIBRISPEECH.glob("*.flac"))[30:34]
LONGEST = max(LIBRISPEECH.glob("*.flac"), key=lambda path: path.stat().st_size)  # enough words for a WER


def template() -> dict:
    parsed, problems = decode(str(TEMPLATE))
    assert not problems, problems
    return parsed


def resources(kind: str) -> dict:
    return {name: r["Properties"] for name, r in template()["Resources"].items() if r["Type"] == kind}


def client(service: str, endpoint: str):
    return boto3.client(service, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id=CREDENTIALS["AWS_ACCESS_KEY_ID"],
                        aws_secret_access_key=CREDENTIALS["AWS_SECRET_ACCESS_KEY"])  # fmt: skip


def cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**os.environ, **CREDENTIALS, "PYTHONPATH": str(REPO / "src"), **(env or {})}
    return subprocess.run([sys.executable, "-m", "batchscribe", *args], capture_output=True, text=True,
                          env=environment, timeout=600)  # fmt: skip


def s3_event(bucket: str, key: str, detail_type: str = "Object Created") -> dict:
    """An S3 event in the exact shape EventBridge documents."""
    return {"version": "0", "id": "17793124-05d4-b198-2fde-7ededc63b103", "detail-type": detail_type,
            "source": "aws.s3", "account": "123456789012", "time": "2026-11-25T12:00:00Z", "region": "us-east-1",
            "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": {"version": "0", "bucket": {"name": bucket},
                       "object": {"key": key, "size": 5, "etag": "b1946ac92492d2347c6235b4d2611184",
                                  "version-id": "IYV3p45BT0ac8hjHg1houSdS1a.Mro8e", "sequencer": "617f08299329d189"},
                       "request-id": "N4N7GDK58NMKJ12R", "requester": "123456789012",
                       "source-ip-address": "1.2.3.4", "reason": "PutObject"}}  # fmt: skip


def render_input_transformer(transformer: dict, event: dict) -> dict:
    """What EventBridge hands the target: InputPathsMap's JSONPaths filled into InputTemplate."""
    rendered = transformer["InputTemplate"]
    for name, path in transformer["InputPathsMap"].items():
        value = event
        for step in path.removeprefix("$.").split("."):
            value = value[step]
        rendered = rendered.replace(f"<{name}>", json.dumps(value))
    return json.loads(rendered)


def test_template_passes_cfn_lint():
    result = subprocess.run([str(BIN / "cfn-lint"), str(TEMPLATE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_buckets_are_encrypted_versioned_private_and_tls_only():
    buckets = resources("AWS::S3::Bucket")
    assert set(buckets) == {"InputBucket", "OutputBucket"}
    for props in buckets.values():
        assert props["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"]
        assert props["VersioningConfiguration"] == {"Status": "Enabled"}
        assert all(props["PublicAccessBlockConfiguration"].values())
    eventbridge = {"EventBridgeConfiguration": {"EventBridgeEnabled": True}}
    assert buckets["InputBucket"]["NotificationConfiguration"] == eventbridge
    policies = {
        p["Bucket"]["Ref"]: p["PolicyDocument"]["Statement"] for p in resources("AWS::S3::BucketPolicy").values()
    }
    for bucket in buckets:
        (deny,) = policies[bucket]
        assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_job_role_reads_the_input_prefix_and_reads_and_writes_the_output_prefix_only():
    (policy,) = resources("AWS::IAM::Role")["JobRole"]["Policies"]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert statements["ReadAudio"]["Action"] == "s3:GetObject"
    assert statements["ReadAudio"]["Resource"] == {"Fn::Sub": "${InputBucket.Arn}/${InputPrefix}*"}
    assert statements["WriteTranscripts"]["Action"] == "s3:PutObject"
    assert statements["WriteTranscripts"]["Resource"] == {"Fn::Sub": "${OutputBucket.Arn}/${OutputPrefix}*"}
    # the resume stamp is read before each object; a missing one must answer 404 (ListBucket), not 403
    assert statements["ReadStamps"]["Action"] == "s3:GetObject"
    assert statements["ReadStamps"]["Resource"] == {"Fn::Sub": "${OutputBucket.Arn}/${OutputPrefix}*"}
    assert statements["TellMissingStamps"]["Action"] == "s3:ListBucket"
    assert statements["TellMissingStamps"]["Resource"] == {"Fn::GetAtt": ["OutputBucket", "Arn"]}
    prefix_only = {"StringLike": {"s3:prefix": {"Fn::Sub": "${OutputPrefix}*"}}}
    assert statements["TellMissingStamps"]["Condition"] == prefix_only
    granted = {s["Action"] for s in statements.values()}
    assert granted == {"s3:GetObject", "s3:PutObject", "s3:ListBucket"}
    every_action = json.dumps(template()["Resources"])
    assert "s3:*\"" not in every_action.replace('"Action": "s3:*", "Resource": [{"Fn::GetAtt"', "")  # only the deny
    assert "AmazonS3FullAccess" not in TEMPLATE.read_text()


def test_batch_scales_from_zero_and_retries_infrastructure_not_bad_input():
    (environment,) = resources("AWS::Batch::ComputeEnvironment").values()
    assert environment["ComputeResources"]["MinvCpus"] == 0
    assert environment["ComputeResources"]["MaxvCpus"] == {"Ref": "MaxvCpus"}
    assert environment["ComputeResources"]["AllocationStrategy"]["Fn::If"][1] == "SPOT_CAPACITY_OPTIMIZED"
    (definition,) = resources("AWS::Batch::JobDefinition").values()
    rules = definition["RetryStrategy"]["EvaluateOnExit"]
    assert rules[0] == {"OnExitCode": "3", "Action": "EXIT"}  # batchscribe job's bad-input code
    assert {"OnStatusReason": "Host EC2*", "Action": "RETRY"} in rules
    assert definition["Timeout"] == {"AttemptDurationSeconds": {"Ref": "JobTimeoutSeconds"}}
    devices = definition["ContainerProperties"]["LinuxParameters"]["Fn::If"][1]["Devices"]
    assert devices[0]["HostPath"] == "/dev/neuron0"
    (logs,) = resources("AWS::Logs::LogGroup").values()
    assert logs["RetentionInDays"] == {"Ref": "LogRetentionDays"}


def test_dockerfiles_lint_clean_and_build_steps_work_here(tmp_path):
    result = subprocess.run([str(BIN / "hadolint"), *map(str, DOCKERFILES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    extras = set(re.findall(r"^([a-z-]+) = \[", (REPO / "pyproject.toml").read_text(), re.M))
    for dockerfile in DOCKERFILES:
        text = dockerfile.read_text()
        for source in re.findall(r"^COPY (.+) \S+$", text, re.M):
            assert all((REPO / name).exists() for name in source.split()), f"{dockerfile.name}: COPY {source}"
        assert re.search(r"ARG EXTRA=(\S+)", text).group(1) in extras
        assert "USER 10001" in text  # not root
    # The model-baking step, exactly as the images run it.
    bake = re.search(r'python -c "(.+?)"', DOCKERFILES[0].read_text()).group(1)
    env = {**os.environ, "BATCHSCRIBE_CACHE": str(tmp_path), "BATCHSCRIBE_MODEL": "tiny.en"}
    subprocess.run([sys.executable, "-c", bake], check=True, env=env)


@pytest.fixture(scope="module")
def stack():
    """The template created in moto's CloudFormation (moto server on 127.0.0.1)."""
    with moto_server() as endpoint:
        ec2, cfn = client("ec2", endpoint), client("cloudformation", endpoint)
        vpc = ec2.create_vpc(CidrBlock="10.0.0.0/16")["Vpc"]["VpcId"]
        subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.0.1.0/24")["Subnet"]["SubnetId"]
        group = ec2.create_security_group(GroupName="batchscribe", Description="jobs", VpcId=vpc)["GroupId"]
        parameters = {"ImageUri": "123456789012.dkr.ecr.us-east-1.amazonaws.com/batchscribe:cpu-tiny.en",
                      "Subnets": subnet, "SecurityGroups": group}  # fmt: skip
        listed = [{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()]
        cfn.create_stack(StackName="batchscribe", TemplateBody=TEMPLATE.read_text(), Capabilities=["CAPABILITY_IAM"],
                         Parameters=listed)  # fmt: skip
        for _ in range(60):
            status = cfn.describe_stacks(StackName="batchscribe")["Stacks"][0]
            if not status["StackStatus"].endswith("IN_PROGRESS"):
                break
            time.sleep(0.5)
        outputs = {o["OutputKey"]: o["OutputValue"] for o in status.get("Outputs", [])}
        yield endpoint, status["StackStatus"], outputs


def test_the_stack_is_created_with_every_resource(stack):
    endpoint, status, outputs = stack
    assert status == "CREATE_COMPLETE"
    batch = client("batch", endpoint)
    (queue,) = batch.describe_job_queues(jobQueues=[outputs["JobQueueArn"]])["jobQueues"]
    (environment,) = batch.describe_compute_environments()["computeEnvironments"]
    assert environment["computeResources"]["minvCpus"] == 0
    (definition,) = batch.describe_job_definitions(jobDefinitions=[outputs["JobDefinitionArn"]])["jobDefinitions"]
    assert definition["containerProperties"]["command"] == ["batchscribe", "job", "--bucket", "Ref::bucket",
                                                            "--key", "Ref::key"]  # fmt: skip
    events = client("events", endpoint)
    (rule,) = events.list_rules()["Rules"]
    (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Arn"] == queue["jobQueueArn"] and target["DeadLetterConfig"]["Arn"].endswith(
        outputs["DeadLetterQueueUrl"].rsplit("/", 1)[1])  # fmt: skip
    roles = {r["RoleName"] for r in client("iam", endpoint).list_roles()["Roles"]}
    assert any("JobRole" in name for name in roles) and any("EventsRole" in name for name in roles)


def test_the_rule_matches_audio_under_the_prefix_and_nothing_else(stack):
    """moto has no TestEventPattern, and its router cannot deliver to a Batch target; so the deployed
    rule's pattern is copied to a rule on a probe bus with an SQS target, and moto's pattern matcher
    decides which real-shaped events get through. (moto renders input templates into invalid JSON, so
    the transformer is checked against AWS's documented semantics in the next test.)"""
    endpoint, _, outputs = stack
    events, sqs = client("events", endpoint), client("sqs", endpoint)
    (deployed,) = events.list_rules()["Rules"]
    queue = sqs.create_queue(QueueName="rule-probe")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    events.create_event_bus(Name="probe")
    events.put_rule(Name="probe", EventBusName="probe", EventPattern=deployed["EventPattern"])
    events.put_targets(Rule="probe", EventBusName="probe", Targets=[{"Id": "probe", "Arn": arn}])
    source, output = outputs["InputBucketName"], outputs["OutputBucketName"]
    cases = {
        (source, "audio-input/talk.mp3", "Object Created"): True,
        (source, "audio-input/2026/11/meeting.wav", "Object Created"): True,
        (source, "audio-input/interview.M4A", "Object Created"): True,
        (source, "audio-input/notes.txt", "Object Created"): False,  # not audio
        (source, "elsewhere/talk.mp3", "Object Created"): False,  # other prefix
        ("someone-elses-bucket", "audio-input/talk.mp3", "Object Created"): False,  # other bucket
        (output, "transcription-output/talk.mp3.txt", "Object Created"): False,  # our own transcripts
        (output, "transcription-output/talk.mp3.json", "Object Created"): False,
        (source, "audio-input/gone.mp3", "Object Deleted"): False,
        (source, "audio-input/talk.mp3", "Object Tags Added"): False,
    }
    for bucket, key, kind in cases:
        event = s3_event(bucket, key, kind)
        entry = {"Source": event["source"], "DetailType": event["detail-type"], "Resources": event["resources"],
                 "Detail": json.dumps(event["detail"]), "EventBusName": "probe"}  # fmt: skip
        events.put_events(Entries=[entry])
    received = []
    for _ in range(5):
        received += [json.loads(m["Body"]) for m in sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10).get(
            "Messages", [])]  # fmt: skip
    delivered = sorted((r["detail"]["bucket"]["name"], r["detail"]["object"]["key"], r["detail-type"])
                       for r in received)  # fmt: skip
    assert delivered == sorted(case for case, match in cases.items() if match)


def test_the_rendered_event_runs_the_job_definitions_exact_command(stack, tmp_path):
    """EventBridge's input transformer -> Batch parameters -> the job's command, run against a real S3 server."""
    _, _, outputs = stack
    (rule,) = resources("AWS::Events::Rule").values()
    transformer = rule["Targets"][0]["InputTransformer"]
    (definition,) = resources("AWS::Batch::JobDefinition").values()
    command = definition["ContainerProperties"]["Command"]
    with seaweedfs(tmp_path / "s3") as endpoint:
        s3 = client("s3", endpoint)
        s3.create_bucket(Bucket="input-bucket")
        s3.create_bucket(Bucket="output-bucket")
        s3.upload_file(str(LONGEST), "input-bucket", f"audio-input/calls/{LONGEST.name}")
        s3.put_object(Bucket="input-bucket", Key="audio-input/calls/broken.wav", Body=b"RIFF....WAVEfmt nonsense")
        env = {"BATCHSCRIBE_INPUT": "s3://input-bucket/audio-input/", "BATCHSCRIBE_OUTPUT":
               "s3://output-bucket/transcription-output/", "AWS_ENDPOINT_URL": endpoint}  # fmt: skip

        def run(key: str) -> subprocess.CompletedProcess:
            parameters = render_input_transformer(transformer, s3_event("input-bucket", key))["Parameters"]
            argv = [parameters[part[5:]] if part.startswith("Ref::") else part for part in command]
            assert argv[:2] == ["batchscribe", "job"]
            return cli(*argv[1:], env=env)

        good = run(f"audio-input/calls/{LONGEST.name}")
        assert good.returncode == 0, good.stderr
        text = s3.get_object(Bucket="output-bucket", Key=f"transcription-output/calls/{LONGEST.name}.txt")
        assert wer([reference(f"librispeech/test-other/{LONGEST.name}")], [text["Body"].read().decode()]) <= 0.35
        assert run("audio-input/calls/broken.wav").returncode == 3  # bad input: Batch must not retry
        assert run("audio-input/calls/missing.wav").returncode == 3
        assert run("elsewhere/x.wav").returncode == 3


def test_backfill_submits_array_jobs_whose_children_transcribe_their_slice(stack):
    endpoint, _, outputs = stack
    request = urllib.request.Request(f"{endpoint}/moto-api/config", method="POST",
                                     data=json.dumps({"batch": {"use_docker": False}}).encode())  # fmt: skip
    urllib.request.urlopen(request).close()
    s3, batch = client("s3", endpoint), client("batch", endpoint)
    source, output = outputs["InputBucketName"], outputs["OutputBucketName"]
    for path in FILES[:3]:
        s3.upload_file(str(path), source, f"audio-input/{path.name}")
    s3.put_object(Bucket=source, Key="audio-input/readme.txt", Body=b"not audio")
    submitted = cli("aws", "backfill", f"s3://{source}/audio-input/", "--job-queue", outputs["JobQueueArn"],
                    "--job-definition", outputs["JobDefinitionArn"], "--files-per-job", "2",
                    "--manifests", f"s3://{output}/batchscribe-manifests/", "--endpoint-url", endpoint)  # fmt: skip
    assert submitted.returncode == 0, submitted.stderr
    job_id = re.search(r"submitted (\S+): 3 files in 2 job", submitted.stdout).group(1)
    (job,) = batch.describe_jobs(jobs=[job_id])["jobs"]
    assert job["arrayProperties"]["size"] == 2
    command = job["container"]["command"]
    assert command[:3] == ["batchscribe", "job", "--manifest"]
    # Child 1 of the array, as Batch would start it: its slice is the third file alone.
    env = {"AWS_BATCH_JOB_ARRAY_INDEX": "1", "BATCHSCRIBE_INPUT": f"s3://{source}/audio-input/",
           "BATCHSCRIBE_OUTPUT": f"s3://{output}/transcription-output/", "AWS_ENDPOINT_URL": endpoint}  # fmt: skip
    child = cli(*command[1:], env=env)
    assert child.returncode == 0, child.stderr
    written = [o["Key"] for o in s3.list_objects_v2(Bucket=output, Prefix="transcription-output/")["Contents"]
               if not o["Key"].rsplit("/", 1)[-1].startswith(".")]  # less the resume stamps
    assert sorted(written) == sorted(f"transcription-output/{FILES[2].name}.{f}" for f in ("txt", "srt", "vtt", "json"))
