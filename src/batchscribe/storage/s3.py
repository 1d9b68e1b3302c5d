"""An S3 prefix as a store, through boto3 (standard credential chain; any S3-compatible endpoint)."""

from __future__ import annotations

import shutil
from pathlib import Path, PurePosixPath
from typing import Iterator, Optional

from batchscribe.errors import InputError
from batchscribe.names import fit_name
from batchscribe.storage.keys import checked_key
from batchscribe.storage.base import StoredObject


NOT_FOUND_CODES = ("404", "NoSuchKey", "NotFound")  # HEAD answers 404, GET NoSuchKey; some servers NotFound


def is_not_found(error: BaseException) -> bool:
    """Whether a botocore error says the object (or bucket key) does not exist."""
    response = getattr(error, "response", None)
    return isinstance(response, dict) and response.get("Error", {}).get("Code", "") in NOT_FOUND_CODES


def s3_client(endpoint_url: Optional[str] = None):
    """boto3's S3 client; a custom endpoint (SeaweedFS, MinIO, Ceph) gets path-style addressing."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "max_attempts": 5})
    if endpoint_url:
        config = config.merge(Config(s3={"addressing_style": "path"}))
    return boto3.client("s3", endpoint_url=endpoint_url or None, config=config)


class S3Store:
    def __init__(self, bucket: str, prefix: str, endpoint_url: Optional[str] = None):
        self.bucket = bucket
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.root = f"s3://{bucket}/{self.prefix}"
        self.client = s3_client(endpoint_url)

    def _key(self, key: str) -> str:
        return self.prefix + checked_key(key)

    def list(self) -> Iterator[StoredObject]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=self.prefix)
        for page in pages:
            for item in page.get("Contents", []):
                yield StoredObject(self.root, item["Key"][len(self.prefix) :], item["ETag"].strip('"'), item["Size"])

    def stat(self, key: str) -> StoredObject:
        from botocore.exceptions import ClientError

        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self._key(key))
        except ClientError as error:
            if is_not_found(error):
                raise InputError(f"{self.root}{key}: no such object") from None
            raise
        return StoredObject(self.root, key, head["ETag"].strip('"'), head["ContentLength"], head.get("VersionId"))

    def local_copy(self, key: str, folder: Path, seen: Optional[StoredObject] = None) -> Path:
        """The object in a local file. `seen`: the object as stat() found it; the copy is then of that
        very content, so a stamp written for it never vouches for other content: its VersionId when
        the bucket keeps versions, else a GET with If-Match on its ETag. Raises botocore's ClientError
        (PreconditionFailed: overwritten since; a retry takes the new content)."""
        name = PurePosixPath(key)
        target = folder / fit_name(name.stem, name.suffix)  # S3 keys may be 1024 bytes; a file name 255
        folder.mkdir(parents=True, exist_ok=True)
        if seen is None or seen.version_id:
            extra = {"VersionId": seen.version_id} if seen is not None else None
            self.client.download_file(self.bucket, self._key(key), str(target), ExtraArgs=extra)
            return target
        body = self.client.get_object(Bucket=self.bucket, Key=self._key(key), IfMatch=f'"{seen.version}"')["Body"]
        with open(target, "wb") as handle:
            shutil.copyfileobj(body, handle, 1 << 20)
        return target

    def put_text(self, key: str, text: str) -> None:
        """One PUT: S3 never shows a half-written object."""
        body = text.encode("utf-8")
        content_type = "application/json" if key.endswith(".json") else "text/plain; charset=utf-8"
        self.client.put_object(Bucket=self.bucket, Key=self._key(key), Body=body, ContentType=content_type)

    def read_text(self, key: str) -> str:
        """A stored text (a transcript); InputError if there is none. Any other error (403 AccessDenied:
        a role without s3:ListBucket is told that for a missing key too) is the client's ClientError."""
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self._key(key))["Body"].read().decode("utf-8")
        except ClientError as error:
            if is_not_found(error):
                raise InputError(f"{self.root}{key}: no such object") from None
            raise
