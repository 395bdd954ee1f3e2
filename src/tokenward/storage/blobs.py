"""Blob stores: named byte objects with ETags — in memory, in a local folder, or in S3.

Shaped like HTTPX transports: a small abstract base (:class:`BlobStore`) and implementations
beside it. Names are flat strings (``auth.example.com_userpolicy.<sha256>``); an ETag is an
opaque string that changes whenever the bytes change, so callers can poll cheaply with
:meth:`BlobStore.head`.

:class:`S3BlobStore` talks to any S3-compatible endpoint (AWS, Cloudflare R2, MinIO, moto)
through boto3, which is synchronous: every call runs in a worker thread. botocore errors are
translated here, into :class:`~tokenward.errors.StorageUnavailable` (endpoint unreachable,
``s3_unreachable``) or :class:`~tokenward.errors.StorageError` (``s3_credentials``,
``s3_access_denied``, ``s3_bucket_missing``, ``s3_error``), each with a sentence to act on
and never a secret.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tokenward.errorcodes import ErrorCode
from tokenward.errors import StorageError, StorageUnavailable

__all__ = ["Blob", "BlobStore", "LocalBlobStore", "MemoryBlobStore", "S3BlobStore", "S3Config", "check_name"]

# Names stay portable across S3 providers and file systems.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,511}$")


def check_name(name: str) -> str:
    """Return ``name`` or raise StorageError (``blob_name_invalid``) for one no store should hold."""
    if not _NAME.match(name) or ".." in name:
        raise StorageError(f"blob name {name!r} is not allowed", code=ErrorCode.BLOB_NAME_INVALID)
    return name


def _etag_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Blob:
    """An object's bytes and the ETag they were read with."""

    data: bytes
    etag: str


class BlobStore(ABC):
    """A flat namespace of byte objects. Implementations translate their own errors."""

    #: Where the objects live, for messages (never includes a secret).
    location: str = "blob store"

    @abstractmethod
    async def get(self, name: str) -> Blob | None:
        """The object, or None when it does not exist."""

    @abstractmethod
    async def head(self, name: str) -> str | None:
        """The object's ETag without its bytes, or None when it does not exist."""

    @abstractmethod
    async def put(self, name: str, data: bytes) -> str:
        """Create or replace the object atomically; return its new ETag."""

    @abstractmethod
    async def delete(self, name: str) -> None:
        """Remove the object; removing a missing object is not an error."""

    @abstractmethod
    async def list(self, prefix: str = "") -> list[str]:
        """Names of the objects starting with ``prefix``, sorted."""

    async def close(self) -> None:  # noqa: B027 - optional hook, most stores hold nothing
        """Release connections; the store is unusable afterwards."""


class MemoryBlobStore(BlobStore):
    """Objects in a dict — for tests and single-process use."""

    location = "memory"

    def __init__(self) -> None:
        self._objects: dict[str, bytes] = {}

    async def get(self, name: str) -> Blob | None:
        data = self._objects.get(check_name(name))
        return None if data is None else Blob(data, _etag_of(data))

    async def head(self, name: str) -> str | None:
        data = self._objects.get(check_name(name))
        return None if data is None else _etag_of(data)

    async def put(self, name: str, data: bytes) -> str:
        self._objects[check_name(name)] = bytes(data)
        return _etag_of(data)

    async def delete(self, name: str) -> None:
        self._objects.pop(check_name(name), None)

    async def list(self, prefix: str = "") -> list[str]:
        return sorted(name for name in self._objects if name.startswith(prefix))


class LocalBlobStore(BlobStore):
    """Objects as files in one folder (0700), each written 0600 and replaced atomically."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.location = str(folder)

    def _path(self, name: str) -> Path:
        return self.folder / check_name(name)

    def _read(self, name: str) -> Blob | None:
        try:
            data = self._path(name).read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StorageError(
                f"cannot read {self._path(name)}: {exc.strerror}", code=ErrorCode.BLOB_UNREADABLE
            ) from None
        return Blob(data, _etag_of(data))

    def _write(self, name: str, data: bytes) -> str:
        from tokenward.datadir import write_private

        try:
            self.folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            write_private(self._path(name), data)
        except OSError as exc:
            raise StorageError(
                f"cannot write {self._path(name)}: {exc.strerror}", code=ErrorCode.BLOB_UNWRITABLE
            ) from None
        return _etag_of(data)

    def _delete(self, name: str) -> None:
        try:
            self._path(name).unlink(missing_ok=True)
        except OSError as exc:
            raise StorageError(
                f"cannot delete {self._path(name)}: {exc.strerror}", code=ErrorCode.BLOB_UNWRITABLE
            ) from None

    def _list(self, prefix: str) -> list[str]:
        try:
            names = os.listdir(self.folder)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if n.startswith(prefix) and not n.startswith(".") and _NAME.match(n))

    async def get(self, name: str) -> Blob | None:
        return await asyncio.to_thread(self._read, name)

    async def head(self, name: str) -> str | None:
        blob = await asyncio.to_thread(self._read, name)
        return None if blob is None else blob.etag

    async def put(self, name: str, data: bytes) -> str:
        return await asyncio.to_thread(self._write, name, data)

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self._delete, name)

    async def list(self, prefix: str = "") -> list[str]:
        return await asyncio.to_thread(self._list, prefix)


@dataclass(frozen=True)
class S3Config:
    """Where and how to reach an S3-compatible bucket. ``secret_key`` never appears in reprs."""

    bucket: str
    url: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    region: str = "us-east-1"
    timeout: float = 3.0

    def __repr__(self) -> str:
        return f"S3Config(bucket={self.bucket!r}, url={self.url!r}, region={self.region!r})"


class S3BlobStore(BlobStore):
    """Objects in one S3 bucket (any S3-compatible endpoint), through boto3 in worker threads."""

    def __init__(self, config: S3Config) -> None:
        try:
            import boto3
            from botocore.config import Config
        except ImportError:  # pragma: no cover - depends on the install
            raise StorageError(
                "S3 support needs boto3: pip install 'tokenward[s3]'", code=ErrorCode.S3_SUPPORT_MISSING
            ) from None
        self.config = config
        self.location = f"s3://{config.bucket}" + (f" at {config.url}" if config.url else "")
        session = boto3.session.Session()
        self._client: Any = session.client(
            "s3",
            endpoint_url=config.url or None,
            aws_access_key_id=config.access_key or None,
            aws_secret_access_key=config.secret_key or None,
            region_name=config.region,
            config=Config(
                connect_timeout=config.timeout,
                read_timeout=config.timeout,
                retries={"max_attempts": 2, "mode": "standard"},
                s3={"addressing_style": "path"},
            ),
        )

    # -- error translation -----------------------------------------------------------------

    def _translate(self, exc: Exception, action: str) -> StorageError:
        from botocore import exceptions as bx

        where = self.location
        if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
            return StorageError(
                f"no S3 credentials to {action} {where}: set TOKENWARD_S3_ACCESS_KEY and TOKENWARD_S3_SECRET_KEY",
                code=ErrorCode.S3_CREDENTIALS,
            )
        if isinstance(exc, bx.ClientError):
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
            if code in ("InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken"):
                return StorageError(
                    f"S3 refused the credentials to {action} {where} ({code}): check TOKENWARD_S3_ACCESS_KEY "
                    "and TOKENWARD_S3_SECRET_KEY",
                    code=ErrorCode.S3_CREDENTIALS,
                )
            if code == "NoSuchBucket" or (code in ("404", "NotFound") and action == "find the bucket of"):
                return StorageError(
                    f"bucket {self.config.bucket!r} does not exist at {self.config.url or 'AWS S3'}: create it or "
                    "fix TOKENWARD_S3_BUCKET",
                    code=ErrorCode.S3_BUCKET_MISSING,
                )
            if code in ("AccessDenied", "AllAccessDisabled") or status == 403:
                return StorageError(
                    f"S3 denied access to {action} {where} ({code or status}): grant the key s3:GetObject, "
                    "s3:PutObject, s3:ListBucket and s3:DeleteObject on the bucket",
                    code=ErrorCode.S3_ACCESS_DENIED,
                )
            if status >= 500 or code in ("SlowDown", "ServiceUnavailable", "InternalError"):
                return StorageUnavailable(
                    f"S3 could not {action} {where} right now ({code or status}); retrying later",
                    code=ErrorCode.S3_UNREACHABLE,
                )
            return StorageError(f"S3 could not {action} {where} ({code or status})", code=ErrorCode.S3_ERROR)
        if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError | bx.ReadTimeoutError):
            return StorageUnavailable(
                f"cannot reach S3 to {action} {where}: check TOKENWARD_S3_URL and the network",
                code=ErrorCode.S3_UNREACHABLE,
            )
        if isinstance(exc, bx.BotoCoreError):
            return StorageUnavailable(
                f"S3 request to {action} {where} failed ({type(exc).__name__})", code=ErrorCode.S3_UNREACHABLE
            )
        return StorageError(f"S3 request to {action} {where} failed ({type(exc).__name__})", code=ErrorCode.S3_ERROR)

    def _call(self, action: str, method: str, **kwargs: Any) -> Any:
        from botocore import exceptions as bx

        try:
            return getattr(self._client, method)(Bucket=self.config.bucket, **kwargs)
        except (bx.BotoCoreError, bx.ClientError) as exc:
            raise self._translate(exc, action) from None

    # -- sync bodies, run in threads ------------------------------------------------------

    def _get(self, name: str) -> Blob | None:
        from botocore import exceptions as bx

        try:
            response = self._client.get_object(Bucket=self.config.bucket, Key=check_name(name))
            data = response["Body"].read()
        except bx.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in ("NoSuchKey", "404"):
                return None
            raise self._translate(exc, f"read {name} from") from None
        except bx.BotoCoreError as exc:
            raise self._translate(exc, f"read {name} from") from None
        return Blob(data, str(response.get("ETag", "")).strip('"'))

    def _head(self, name: str) -> str | None:
        from botocore import exceptions as bx

        try:
            response = self._client.head_object(Bucket=self.config.bucket, Key=check_name(name))
        except bx.ClientError as exc:
            error = exc.response.get("Error", {})
            if str(error.get("Code")) in ("404", "NoSuchKey", "NotFound"):
                # HEAD has no body: a missing bucket also says 404. Tell them apart once.
                self._call("find the bucket of", "head_bucket")
                return None
            raise self._translate(exc, f"check {name} in") from None
        except bx.BotoCoreError as exc:
            raise self._translate(exc, f"check {name} in") from None
        return str(response.get("ETag", "")).strip('"')

    def _put(self, name: str, data: bytes) -> str:
        response = self._call(f"write {name} to", "put_object", Key=check_name(name), Body=data)
        return str(response.get("ETag", "")).strip('"')

    def _list(self, prefix: str) -> list[str]:
        names: list[str] = []
        token: str | None = None
        while True:
            extra: dict[str, Any] = {"ContinuationToken": token} if token else {}
            response = self._call("list", "list_objects_v2", Prefix=prefix, **extra)
            names.extend(str(item["Key"]) for item in response.get("Contents", ()))
            if not response.get("IsTruncated"):
                return sorted(names)
            token = response.get("NextContinuationToken")

    async def get(self, name: str) -> Blob | None:
        return await asyncio.to_thread(self._get, name)

    async def head(self, name: str) -> str | None:
        return await asyncio.to_thread(self._head, name)

    async def put(self, name: str, data: bytes) -> str:
        return await asyncio.to_thread(self._put, name, data)

    async def delete(self, name: str) -> None:
        await asyncio.to_thread(self._call, f"delete {name} from", "delete_object", Key=check_name(name))

    async def list(self, prefix: str = "") -> list[str]:
        return await asyncio.to_thread(self._list, prefix)

    async def close(self) -> None:
        await asyncio.to_thread(self._client.close)
