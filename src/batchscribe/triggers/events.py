"""Storage events in the shapes AWS documents, turned into 'this object was created'.

Accepted: S3 event notification records (`{"Records": [...]}`, keys URL-encoded, as S3 sends
to SQS/SNS and as MinIO and Ceph push to webhooks), the same wrapped in an SNS envelope,
EventBridge 'Object Created' events (`detail.bucket.name`, `detail.object.key`), and the
seed's input-transformer output (`{"bucket": ..., "key": ...}`). Other S3 events (deletes,
tags, S3's test event) are valid but say nothing to do. Anything else is malformed.
Event ids are never trusted for de-duplication: the job store keys on the object version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Optional
from urllib.parse import unquote_plus

from batchscribe.errors import InputError


class MalformedEvent(InputError):
    """A message that is not a storage event batchscribe understands."""


@dataclass(frozen=True)
class ObjectCreated:
    bucket: str
    key: str
    etag: Optional[str] = None
    size: Optional[int] = None


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise MalformedEvent(f"{what} is missing or not a string")
    return value


def _record(record: Any) -> Optional[ObjectCreated]:
    if not isinstance(record, dict) or not isinstance(record.get("s3"), dict):
        raise MalformedEvent("a record without an 's3' object")
    name = _text(record.get("eventName"), "Records[].eventName")
    if "ObjectCreated" not in name:
        return None
    s3 = record["s3"]
    obj = s3.get("object") if isinstance(s3.get("object"), dict) else {}
    bucket = _text((s3.get("bucket") or {}).get("name"), "Records[].s3.bucket.name")
    key = unquote_plus(_text(obj.get("key"), "Records[].s3.object.key"))  # records carry keys URL-encoded
    return ObjectCreated(bucket, key, obj.get("eTag") or obj.get("etag") or None, obj.get("size"))


def _eventbridge(event: dict) -> Optional[ObjectCreated]:
    if event.get("detail-type") != "Object Created":
        return None  # 'Object Tags Added', 'Object Deleted', ...
    detail = event.get("detail")
    if not isinstance(detail, dict):
        raise MalformedEvent("an EventBridge event without 'detail'")
    obj = detail.get("object") if isinstance(detail.get("object"), dict) else {}
    bucket = _text((detail.get("bucket") or {}).get("name"), "detail.bucket.name")
    key = _text(obj.get("key"), "detail.object.key")
    return ObjectCreated(bucket, key, obj.get("etag") or obj.get("eTag") or None, obj.get("size"))


def parse_events(body: str) -> list[ObjectCreated]:
    """Every object creation a message announces (possibly none); MalformedEvent if it is not an event."""
    try:
        message = json.loads(body)
    except (ValueError, TypeError) as error:
        raise MalformedEvent(f"not JSON: {error}") from None
    if not isinstance(message, dict):
        raise MalformedEvent("not a JSON object")
    if message.get("Type") == "Notification" and isinstance(message.get("Message"), str):
        return parse_events(message["Message"])  # S3 -> SNS -> SQS
    if message.get("Event") == "s3:TestEvent":
        return []
    if "Records" in message:
        if not isinstance(message["Records"], list):
            raise MalformedEvent("'Records' is not a list")
        return [created for created in map(_record, message["Records"]) if created]
    if message.get("source") == "aws.s3" and "detail-type" in message:
        created = _eventbridge(message)
        return [created] if created else []
    if set(message) >= {"bucket", "key"}:  # an input transformer's {bucket, key}
        return [ObjectCreated(_text(message["bucket"], "bucket"), _text(message["key"], "key"))]
    raise MalformedEvent("neither S3 notification records nor an EventBridge S3 event")
