"""File storage by sha256: the same bytes are kept once, written whole before anything refers to them.

Two stores share one interface: `LocalStorage` (a folder) and `S3Storage` (an S3-compatible bucket).
Both take an upload the same way: it is first spooled to a private local temp file while being hashed
and measured (`spool`), then the finished file is handed over with its hash (`put_file`). So the hash is
known before anything is written to its final place, nothing is ever held whole in memory, and S3 needs
no temporary key and no copy.
"""
import base64
import errno
import hashlib
import os
import re
import secrets
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from sqlmodel import Session

from .db import insert_new
from .errors import InvalidInput
from .models import Blob, BlobHolder, utcnow

CHUNK = 1024 * 1024
HEAD = 64 * 1024  # enough of a file's start to tell what it is (magic numbers, WebM track list)
MB = 1024 * 1024
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class Storage(Protocol):
    """What every blob store offers."""

    spool_dir: Path

    def put(self, stream: BinaryIO, max_size: int) -> tuple[str, int]: ...

    def put_file(self, path: str | Path, sha256: str) -> None: ...

    def exists(self, sha256: str) -> bool: ...

    def open(self, sha256: str) -> BinaryIO: ...


@dataclass(frozen=True)
class Spooled:
    """An upload copied to a private temp file, with its hash, size and first bytes."""

    path: Path
    sha256: str
    size: int
    head: bytes


def too_large(max_size: int, what: str = "") -> InvalidInput:
    """Return the refusal for a file over its limit, naming the limit in MB."""
    amount = f"{max_size / MB:g} MB" if max_size >= MB else f"{max_size} bytes"
    allowed = f"the {amount} allowed" + (f" for {what}" if what else "")
    return InvalidInput(f"The file is larger than {allowed}.", field="file")


def _read_head(stream: BinaryIO) -> bytes:
    """Read up to HEAD bytes, however short the stream's reads are."""
    parts, size = [], 0
    while size < HEAD and (chunk := stream.read(HEAD - size)):
        parts.append(chunk)
        size += len(chunk)
    return b"".join(parts)


@contextmanager
def spool(stream: BinaryIO, directory: str | Path, max_size: int,
          limit: Callable[[bytes], tuple[int, str]] | None = None) -> Iterator[Spooled]:
    """Copy a stream to a private temp file while hashing it; the file is removed when the block ends.

    `limit`, if given, sees the first bytes and returns the size limit and what it is for: so an upload
    is refused for its type as soon as its start is read, and for its size as soon as it passes the limit.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=directory, prefix="upload-")
    try:
        with os.fdopen(fd, "wb") as out:
            head = _read_head(stream)
            if not head:
                raise InvalidInput("The file is empty.", field="file")
            what = ""
            if limit is not None:
                max_size, what = limit(head)
            digest, size, chunk = hashlib.sha256(), 0, head
            while chunk:
                size += len(chunk)
                if size > max_size:
                    raise too_large(max_size, what)  # stop reading: the rest is never taken in
                digest.update(chunk)
                out.write(chunk)
                chunk = stream.read(CHUNK)
        yield Spooled(Path(name), digest.hexdigest(), size, head)
    finally:
        Path(name).unlink(missing_ok=True)


def fsync_dir(path: Path) -> None:
    """Make a rename in this folder durable, where the platform allows it."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass  # some filesystems cannot sync a folder; the file itself is synced already
    finally:
        os.close(fd)


class LocalStorage:
    """Blobs in a folder, fanned out by the first two bytes of their hash."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.spool_dir = self.root / "tmp"  # same filesystem as the blobs, so a finished upload is linked, not copied

    def path(self, sha256: str) -> Path:
        """Return where a blob lives."""
        if not SHA256.match(sha256):
            raise InvalidInput("That is not a file hash.", field="sha256")
        return self.root / sha256[:2] / sha256[2:4] / sha256

    def exists(self, sha256: str) -> bool:
        """Say whether a blob is stored."""
        return self.path(sha256).is_file()

    def put(self, stream: BinaryIO, max_size: int) -> tuple[str, int]:
        """Stream bytes to disk while hashing them; return the hash and size once they are safely in place."""
        with spool(stream, self.spool_dir, max_size) as upload:
            self.put_file(upload.path, upload.sha256)
            return upload.sha256, upload.size

    def put_file(self, path: str | Path, sha256: str) -> None:
        """Store a local file whose sha256 the caller has just computed; the caller keeps its file."""
        final = self.path(sha256)
        if final.is_file():
            return
        self.spool_dir.mkdir(parents=True, exist_ok=True)
        tmp = self.spool_dir / f"put-{secrets.token_hex(8)}"  # os.link refuses to overwrite, so a clash fails safe
        try:
            try:
                os.link(path, tmp)  # no copy when the file is already on this filesystem
            except OSError as error:
                if error.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                    raise
                shutil.copyfile(path, tmp)
            with open(tmp, "rb+") as out:
                os.fsync(out.fileno())  # a power cut must not leave a row pointing at a partial file
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp, final)
            fsync_dir(final.parent)
        finally:
            tmp.unlink(missing_ok=True)

    def open(self, sha256: str) -> BinaryIO:
        """Open a stored blob for reading."""
        return open(self.path(sha256), "rb")


class S3Storage:
    """Blobs in an S3-compatible bucket under blobs/ab/cd/<sha256>, uploaded in parts when large."""

    MIN_PART = 5 * MB  # S3's smallest part (all but the last)

    def __init__(self, bucket: str, client: Any, *, part_size: int = 8 * MB, spool_dir: str | Path | None = None):
        if part_size < self.MIN_PART:
            raise ValueError("S3 parts must be at least 5 MB")
        self.bucket = bucket
        self.client = client
        self.part_size = part_size
        self.spool_dir = Path(spool_dir or tempfile.gettempdir()) / "tracker-uploads"

    def key(self, sha256: str) -> str:
        """Return the object key of a blob."""
        if not SHA256.match(sha256):
            raise InvalidInput("That is not a file hash.", field="sha256")
        return f"blobs/{sha256[:2]}/{sha256[2:4]}/{sha256}"

    def exists(self, sha256: str) -> bool:
        """Say whether a blob is stored."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self.key(sha256))
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def put(self, stream: BinaryIO, max_size: int) -> tuple[str, int]:
        """Spool and hash the stream locally, then upload it once under its final key."""
        with spool(stream, self.spool_dir, max_size) as upload:
            self.put_file(upload.path, upload.sha256)
            return upload.sha256, upload.size

    def put_file(self, path: str | Path, sha256: str) -> None:
        """Upload a local file whose sha256 the caller has just computed, in parts if it is large."""
        key = self.key(sha256)
        if self.exists(sha256):
            return
        if os.path.getsize(path) <= self.part_size:
            with open(path, "rb") as body:
                # S3 checks the bytes it received against the hash we name them by.
                checksum = base64.b64encode(bytes.fromhex(sha256)).decode()
                self.client.put_object(Bucket=self.bucket, Key=key, Body=body, ChecksumSHA256=checksum)
            return
        self._put_parts(path, key)

    def _put_parts(self, path: str | Path, key: str) -> None:
        """Upload a file part by part, reading one part at a time; abandon the upload on any failure."""
        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]
        try:
            parts = []
            with open(path, "rb") as source:
                while data := source.read(self.part_size):
                    number = len(parts) + 1
                    answer = self.client.upload_part(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                     PartNumber=number, Body=data)
                    parts.append({"PartNumber": number, "ETag": answer["ETag"]})
            self.client.complete_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id,
                                                  MultipartUpload={"Parts": parts})
        except BaseException:
            # An unfinished upload's parts are kept (and billed) until aborted.
            self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            raise

    def open(self, sha256: str) -> BinaryIO:
        """Open a stored blob as a readable stream; a missing one raises FileNotFoundError, as on disk."""
        from botocore.exceptions import ClientError

        try:
            return self.client.get_object(Bucket=self.bucket, Key=self.key(sha256))["Body"]
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                raise FileNotFoundError(f"blob {sha256} is not in the bucket") from None
            raise


def storage_from_config(config: dict, instance_path: str | Path) -> LocalStorage | S3Storage:
    """Build the configured store: STORAGE = "local" (instance/media, the default) or "s3"."""
    kind = (config.get("STORAGE") or "local").lower()
    if kind == "local":
        return LocalStorage(config.get("MEDIA_ROOT") or Path(instance_path) / "media")
    if kind != "s3":
        raise ValueError(f'STORAGE must be "local" or "s3", not {kind!r}')
    if not config.get("S3_BUCKET"):
        raise ValueError('STORAGE = "s3" needs S3_BUCKET')
    import boto3  # only installations that use S3 need boto3
    from botocore.config import Config

    # Credentials come from the environment, a profile or an instance role, as boto3 finds them.
    # S3_ADDRESSING_STYLE = "path" suits servers (MinIO and the like) without a wildcard DNS name.
    style = config.get("S3_ADDRESSING_STYLE") or "auto"
    client = boto3.client("s3", endpoint_url=config.get("S3_ENDPOINT_URL") or None,
                          region_name=config.get("S3_REGION") or None,
                          config=Config(s3={"addressing_style": style}))
    return S3Storage(config["S3_BUCKET"], client, spool_dir=Path(instance_path) / "tmp")


def record(session: Session, sha256: str, size: int, media_type: str) -> Blob:
    """Return the Blob row for stored bytes, adding it the first time (the same file sent twice at once: once)."""
    insert_new(session, Blob, {"sha256": sha256, "size": size, "media_type": media_type, "created_at": utcnow()})
    return session.get(Blob, sha256)


def hold(session: Session, sha256: str, user_id: object) -> None:
    """Record that a person has sent a stored file's bytes (their proof of possession, kept once)."""
    if user_id is not None:
        insert_new(session, BlobHolder, {"sha256": sha256, "user_id": user_id, "proven_at": utcnow()})


def store(session: Session, storage: Storage, stream: BinaryIO, media_type: str, max_size: int) -> Blob:
    """Store a file and its Blob row; storing the same bytes again returns the existing row."""
    sha256, size = storage.put(stream, max_size)
    return record(session, sha256, size, media_type)
