"""Artifact bytes behind one small object-store interface: a local folder or S3.

A `put` is atomic: a reader sees the old object, the new one, or none, never part
of one. Keys are relative slash-separated paths such as `kernels/<id>/<sha>.pt2`.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

from esper.errors import Unavailable
from esper.fsutil import atomic_write, fsync_directory

logger = logging.getLogger(__name__)

_KEY_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+(/[A-Za-z0-9_.\-]+)*$")


class ObjectMissing(LookupError):
    """No object is stored under the key."""


class ObjectStore(Protocol):
    """Where artifact bytes live."""

    def put(self, key: str, data: bytes) -> None:
        """Store `data` under `key` atomically, replacing any object there."""
        ...

    def get(self, key: str) -> bytes:
        """The object's bytes; ObjectMissing if there is none."""
        ...

    def read_chunks(self, key: str, chunk_size: int) -> Iterator[bytes]:
        """The object's bytes in pieces of `chunk_size` (the last may be shorter), never all in memory.

        ObjectMissing (at the first piece) if there is none.
        """
        ...

    def exists(self, key: str) -> bool: ...

    def delete(self, key: str) -> None:
        """Remove the object; no error if it is already gone."""
        ...

    def size(self, key: str) -> int:
        """The object's size in bytes; ObjectMissing if there is none."""
        ...


def check_key(key: str) -> str:
    """`key` if it is a safe relative path (no `..`, no leading slash), else ValueError."""
    if not _KEY_PATTERN.match(key) or any(part in {".", ".."} for part in key.split("/")):
        raise ValueError(f"invalid object key {key!r}")
    return key


class FolderObjectStore:
    """Objects as files under a root folder; a put writes a temp file, fsyncs it and renames it."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def _path(self, key: str) -> Path:
        return self.root / check_key(key)

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data, mode=0o600)
        # Best effort: not every platform or filesystem lets a directory be opened and fsync'd.
        with contextlib.suppress(OSError):
            fsync_directory(path.parent)

    def get(self, key: str) -> bytes:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc

    def read_chunks(self, key: str, chunk_size: int) -> Iterator[bytes]:
        try:
            handle = self._path(key).open("rb")
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc
        with handle:
            while piece := handle.read(chunk_size):
                yield piece

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)

    def size(self, key: str) -> int:
        try:
            return self._path(key).stat().st_size
        except FileNotFoundError as exc:
            raise ObjectMissing(key) from exc


class S3Settings(Protocol):
    """Where an S3 store is: `store` is `s3://bucket[/prefix]`; empty credentials use boto3's chain."""

    @property
    def store(self) -> str: ...

    @property
    def s3_endpoint_url(self) -> str | None: ...

    @property
    def s3_access_key(self) -> str | None: ...

    @property
    def s3_secret_key(self) -> str | None: ...

    @property
    def s3_region(self) -> str: ...


class S3ObjectStore:
    """Objects in one S3 bucket under a key prefix, through boto3 with path-style addressing."""

    def __init__(self, client: Any, bucket: str, prefix: str = "") -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self._ensure_bucket()

    @classmethod
    def from_config(cls, config: S3Settings) -> S3ObjectStore:
        import boto3
        from botocore.config import Config

        bucket, _, prefix = config.store[len("s3://") :].partition("/")
        client = boto3.client(
            "s3",
            endpoint_url=config.s3_endpoint_url or None,
            aws_access_key_id=config.s3_access_key or None,
            aws_secret_access_key=config.s3_secret_key or None,
            region_name=config.s3_region,
            config=Config(
                s3={"addressing_style": "path"},
                retries={"max_attempts": 3, "mode": "standard"},
                connect_timeout=5,
                read_timeout=30,
                # S3-compatible stores do not all speak the newer flexible checksums.
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
            ),
        )
        return cls(client, bucket, prefix)

    def _key(self, key: str) -> str:
        check_key(key)
        return f"{self.prefix}/{key}" if self.prefix else key

    def _ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        with _s3_errors(f"s3://{self.bucket}"):
            try:
                self._client.head_bucket(Bucket=self.bucket)
                return
            except ClientError as exc:
                if _error_code(exc) not in {"404", "NoSuchBucket", "NotFound"}:
                    raise
            logger.info("creating bucket %s", self.bucket)
            try:
                self._client.create_bucket(Bucket=self.bucket)
            except ClientError as exc:
                if _error_code(exc) not in {"BucketAlreadyOwnedByYou", "BucketAlreadyExists"}:
                    raise

    def put(self, key: str, data: bytes) -> None:
        with _s3_errors(key):
            self._client.put_object(Bucket=self.bucket, Key=self._key(key), Body=data)

    def get(self, key: str) -> bytes:
        with _s3_errors(key):
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            except Exception as exc:
                if _is_missing(exc):
                    raise ObjectMissing(key) from exc
                raise
            body: bytes = response["Body"].read()
            return body

    def read_chunks(self, key: str, chunk_size: int) -> Iterator[bytes]:
        with _s3_errors(key):
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=self._key(key))
            except Exception as exc:
                if _is_missing(exc):
                    raise ObjectMissing(key) from exc
                raise
            body = response["Body"]
            try:
                pending = b""
                for piece in body.iter_chunks(chunk_size):
                    pending += piece
                    while len(pending) >= chunk_size:
                        yield pending[:chunk_size]
                        pending = pending[chunk_size:]
                if pending:
                    yield pending
            finally:
                body.close()

    def exists(self, key: str) -> bool:
        try:
            self.size(key)
        except ObjectMissing:
            return False
        return True

    def delete(self, key: str) -> None:
        with _s3_errors(key):
            self._client.delete_object(Bucket=self.bucket, Key=self._key(key))

    def size(self, key: str) -> int:
        with _s3_errors(key):
            try:
                response = self._client.head_object(Bucket=self.bucket, Key=self._key(key))
            except Exception as exc:
                if _is_missing(exc):
                    raise ObjectMissing(key) from exc
                raise
            return int(response["ContentLength"])


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _is_missing(exc: Exception) -> bool:
    return _error_code(exc) in {"404", "NoSuchKey", "NotFound"}


@contextlib.contextmanager
def _s3_errors(what: str) -> Iterator[None]:
    """Turn S3 connection and server failures into Unavailable; pass ObjectMissing through."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        yield
    except (BotoCoreError, ClientError) as exc:
        raise Unavailable(f"object store failed on {what}: {exc}") from exc


def open_object_store(config: S3Settings) -> ObjectStore:
    """The store `config.store` names: `s3://bucket[/prefix]` or a folder path."""
    if config.store.startswith("s3://"):
        return S3ObjectStore.from_config(config)
    return FolderObjectStore(Path(config.store))
