"""Event shapes as AWS documents them, and the route that filters them like the seed's EventBridge rule."""

import json

import pytest

from batchscribe.storage.keys import UnsafeKeyError, checked_key, output_key
from batchscribe.triggers.events import MalformedEvent, ObjectCreated, parse_events
from batchscribe.triggers.route import Route


def s3_record(key, bucket="media", name="ObjectCreated:Put", etag="abc"):
    return {"eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1", "eventName": name,
            "s3": {"s3SchemaVersion": "1.0", "bucket": {"name": bucket, "arn": f"arn:aws:s3:::{bucket}"},
                   "object": {"key": key, "size": 1024, "eTag": etag, "sequencer": "0A1B"}}}  # fmt: skip


def eventbridge(key, detail_type="Object Created", bucket="media"):
    return {"version": "0", "id": "same-id-every-time", "detail-type": detail_type, "source": "aws.s3",
            "account": "123456789012", "region": "us-east-1", "resources": [f"arn:aws:s3:::{bucket}"],
            "detail": {"version": "0", "bucket": {"name": bucket},
                       "object": {"key": key, "size": 1024, "etag": "abc", "sequencer": "0A1B"},
                       "request-id": "X", "requester": "123456789012", "reason": "PutObject"}}  # fmt: skip


def test_s3_records_have_url_encoded_keys():
    body = json.dumps({"Records": [s3_record("audio-input/red+flower%281%29.mp3")]})
    assert parse_events(body) == [ObjectCreated("media", "audio-input/red flower(1).mp3", "abc", 1024)]


def test_sns_envelope_eventbridge_and_input_transformer_shapes():
    sns = {"Type": "Notification", "Message": json.dumps({"Records": [s3_record("audio-input/a.wav")]})}
    assert parse_events(json.dumps(sns))[0].key == "audio-input/a.wav"
    assert parse_events(json.dumps(eventbridge("audio-input/a b.wav")))[0].key == "audio-input/a b.wav"
    assert parse_events(json.dumps({"bucket": "media", "key": "audio-input/a.wav"}))[0].bucket == "media"


def test_other_s3_events_say_nothing_to_do():
    assert parse_events(json.dumps(eventbridge("audio-input/a.wav", "Object Tags Added"))) == []
    assert parse_events(json.dumps({"Records": [s3_record("a.wav", name="ObjectRemoved:Delete")]})) == []
    assert parse_events(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent"})) == []


@pytest.mark.parametrize(
    "body",
    ["", "not json", "[1, 2]", '{"hello": "world"}', '{"Records": "x"}', '{"Records": [{"eventName": "x"}]}',
     json.dumps({"Records": [s3_record("")]}), json.dumps({"source": "aws.s3", "detail-type": "Object Created"})],
)  # fmt: skip
def test_malformed_messages_are_rejected_with_a_reason(body):
    with pytest.raises(MalformedEvent):
        parse_events(body)


@pytest.mark.parametrize("key", ["../x.mp3", "a/../../x.mp3", "/etc/x.mp3", "a/./x.mp3", "a\x00.mp3",
                                 "a\\..\\x.mp3", "dir/"])  # fmt: skip
def test_unsafe_keys_never_become_paths(key):
    with pytest.raises(UnsafeKeyError):
        checked_key(key)


def test_outputs_keep_the_source_extension():
    assert output_key("a/b.mp3", "txt") == "a/b.mp3.txt"


def test_route_filters_like_the_seed_rule(tmp_path):
    route = Route.open("s3://media/audio-input/", "s3://media/audio-input/transcripts/")
    take = lambda bucket, key: route.event_object(ObjectCreated(bucket, key, "etag", 10))
    assert take("media", "audio-input/talks/a.mp3").key == "talks/a.mp3"
    assert take("other", "audio-input/a.mp3") is None  # other bucket
    assert take("media", "elsewhere/a.mp3") is None  # other prefix
    assert take("media", "audio-input/notes.txt") is None  # not audio
    assert take("media", "audio-input/transcripts/a.mp3") is None  # our own output tree: no loops
    with pytest.raises(UnsafeKeyError):
        take("media", "audio-input/../secret.mp3")


def test_local_store_refuses_paths_outside_its_root(tmp_path):
    from batchscribe.storage.local import LocalStore

    store = LocalStore(tmp_path / "out")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "link").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(Exception, match="outside"):
        store.put_text("link/x.mp3.txt", "text")
    store.put_text("a/b.mp3.txt", "text")
    assert (tmp_path / "out" / "a" / "b.mp3.txt").read_text() == "text"
