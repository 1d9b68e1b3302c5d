"""Where audio comes from and transcripts go: a local folder or an S3 prefix, addressed by URI.

A store is rooted at a folder or `s3://bucket/prefix/`; keys are relative to that root.
Every object has a version (S3: its ETag; a local file: its content's sha256), so a job can
name exactly the content it transcribed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional
from urllib.parse import unquote, urlparse

from batchscribe.errors import OptionsError
from batchscribe.storage.base import Store, StoredObject
from batchscribe.storage.local import LocalStore
from batchscribe.storage.s3 import S3Store  # boto3 itself is imported when a client is made

__all__ = ["LocalStore", "S3Store", "Store", "StoredObject", "open_store", "split_uri"]


def split_uri(uri: str) -> tuple[str, Optional[str], str]:
    """(scheme, bucket, key-or-path): `s3://b/k` -> ('s3', 'b', 'k'); paths -> ('file', None, '/abs')."""
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise OptionsError(f"{uri}: an S3 URI needs a bucket, e.g. s3://my-bucket/audio/")
        return "s3", parsed.netloc, parsed.path.lstrip("/")
    if parsed.scheme == "file":
        return "file", None, str(Path(unquote(parsed.path)).resolve())
    if not parsed.scheme or len(parsed.scheme) == 1:  # a plain path (or a Windows drive letter)
        return "file", None, str(Path(uri).resolve())
    raise OptionsError(f"{uri}: unsupported location; use a folder, file:// or s3://bucket/prefix/")


def open_store(uri: str, endpoint_url: Optional[str] = None) -> Store:
    """The store rooted at `uri` (a folder or an S3 prefix)."""
    scheme, bucket, path = split_uri(uri)
    if scheme == "s3":
        assert bucket is not None
        return S3Store(bucket, path, endpoint_url)
    return LocalStore(Path(path))
