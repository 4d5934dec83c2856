"""The centre's side of media sync: files sent in resumable parts, verified, then stored by their sha256 (G6, G7).

A device names each file by the sha256 of its bytes and declares its total size. Parts arrive in order, each at
the offset where the last one ended; a part that repeats bytes already received is harmless, a part that would
leave a gap is refused with the number of bytes received so far. Parts are appended to a spool file, never held
whole in memory. When the last byte arrives the file is hashed again, its real type is sniffed, its type's size
limit applied, and a photo that still carries EXIF or GPS metadata is refused: devices clean photos with the same
media pipeline before they are queued, so the centre stores the bytes as they are and the hashes match on both
sides. A refused file is discarded whole; the device starts it again.

Each device has its own upload of a file, in a spool folder of its own: another device sending the same bytes
(or pretending to) can neither block nor spoil it. A device may have at most MAX_UNFINISHED files part-sent, of
at most MAX_UNFINISHED_BYTES declared in all, so no device can fill the centre's disk with parts it never finishes.
"""
import hashlib
import logging
import os
from datetime import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, func, select

from tracker import media as pipeline
from tracker.audit import SYSTEM, Actor, record
from tracker.errors import InvalidInput, Refusal
from tracker.models import Blob, Upload, User, utcnow
from tracker.services import evidence
from tracker.storage import CHUNK, HEAD, MB, SHA256, Storage
from tracker.storage import hold
from tracker.storage import record as record_blob

log = logging.getLogger(__name__)

PART = 8 * MB  # the largest part one request may carry
MAX_UNFINISHED = 20  # files one device may have part-sent at once
MAX_UNFINISHED_BYTES = 2 * 1024 * MB  # their declared sizes, in all
LIMITS = dict(pipeline.LIMITS)
LARGEST = max(LIMITS.values())
UNSUPPORTED = f"The file is not of a type the centre accepts: {pipeline.ACCEPTED}."
METADATA_KEYS = ("exif", "xmp", "XML:com.adobe.xmp", "gps", "GPSInfo")


class MediaRefused(Refusal):
    """An upload the centre will not take, with the code the device acts on and any extra answer fields."""

    kind = "media"

    def __init__(self, code: str, message: str, **extra: Any):
        super().__init__(code, message)
        self.extra = extra


@dataclass(frozen=True)
class UploadState:
    """How much of a file the centre has."""

    sha256: str
    size: int | None
    received: int
    complete: bool

    def as_dict(self) -> dict[str, Any]:
        """Return the state as plain JSON data."""
        return {"sha256": self.sha256, "size": self.size, "received": self.received, "complete": self.complete}


def limits() -> dict[str, int]:
    """Return the size limits the centre advertises: per type, per part."""
    return {**LIMITS, "part": PART}


def check_hash(sha256: str) -> str:
    """Return a well-formed lower-case sha256 hex name, or refuse it."""
    if not isinstance(sha256, str) or not SHA256.match(sha256):
        raise InvalidInput("A file is named by the sha256 of its bytes: 64 lower-case hexadecimal characters.",
                           field="sha256")
    return sha256


def spool_path(storage: Storage, sha256: str, device_id: object) -> Path:
    """Return where a device's parts of a file are gathered (beside the store, so finishing is a link, not a copy)."""
    return Path(storage.spool_dir) / "parts" / str(device_id) / check_hash(sha256)


def _proven(session: Session, user: User | None, sha256: str) -> bool:
    """Say whether the centre holds a file whole and this person may attach it without sending its bytes."""
    return session.get(Blob, sha256) is not None and not evidence.unproven(session, user, {sha256})


def state(session: Session, storage: Storage, sha256: str, user: User | None = None,
          device_id: object = None) -> UploadState:
    """Return what the centre holds of a file for this person and device: complete, part-way, or nothing yet.

    A file stored for someone else and attached where this person cannot read it counts as not held: they send
    its bytes like anyone else, and that proves they have it (a hash alone proves nothing).
    """
    check_hash(sha256)
    if _proven(session, user, sha256):
        blob = session.get(Blob, sha256)
        return UploadState(sha256, blob.size, blob.size, True)
    upload = session.get(Upload, (device_id, sha256)) if device_id is not None else None
    if upload is None:
        return UploadState(sha256, None, 0, False)
    return UploadState(sha256, upload.size, upload.received, False)


def _declared_size(size: Any) -> int:
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InvalidInput("Give the file's total size in bytes (size=…), a whole number above zero.", field="size")
    if size > LARGEST:
        raise MediaRefused("too_large", f"The file is larger than the {LARGEST // MB} MB allowed for any file.",
                           limit=LARGEST)
    return size


def _offset(offset: Any) -> int:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidInput("Give the part's offset in bytes (offset=…), a whole number from zero.", field="offset")
    return offset


def receive_part(session: Session, storage: Storage, actor: Actor, sha256: str, size: Any, offset: Any,
                 stream: BinaryIO, length: int | None) -> tuple[UploadState, bool]:
    """Take one part of a file; return the new state and whether this part completed (and stored) the file.

    The caller commits. A refusal after bytes were spooled discards the whole upload before it is raised, and
    that discard must be committed too.
    """
    check_hash(sha256)
    size, offset = _declared_size(size), _offset(offset)
    if length is not None and length > PART:
        raise MediaRefused("too_large", f"A part may carry at most {PART // MB} MB; send the file in smaller parts.",
                           limit=PART)
    if actor.device_id is None:
        raise InvalidInput("Files are sent in parts by a signed-in device.", field="device")
    if _proven(session, actor.user, sha256) and storage.exists(sha256):
        return state(session, storage, sha256, actor.user, actor.device_id), False
    upload = _lock(session, sha256, size, actor)
    path = spool_path(storage, sha256, actor.device_id)
    upload.received = min(upload.received, path.stat().st_size if path.exists() else 0)  # a lost spool restarts
    if upload.size != size:
        raise MediaRefused("size_changed", f"This file was started with a size of {upload.size} bytes; a file "
                                           "named by its hash cannot change size.", received=upload.received)
    if offset > upload.received:
        raise MediaRefused("upload_gap", f"The centre has the first {upload.received} bytes of this file; send the "
                                         "part that starts there.", received=upload.received)
    before = upload.received
    upload.received = _append(path, upload.received, offset, size, stream)
    if before < min(HEAD, size) and upload.received > before:
        # Refuse an unknown type or an over-limit size before the rest comes.
        _check_head(session, upload, path, whole=upload.received >= min(HEAD, size))
    upload.updated_at = utcnow()
    session.add(upload)
    session.flush()
    if upload.received < size:
        return UploadState(sha256, size, upload.received, False), False
    try:
        blob = _finish(session, storage, actor, upload, path)
    except Refusal:
        _discard(session, upload, path)
        raise
    return UploadState(sha256, blob.size, blob.size, True), True


def _lock(session: Session, sha256: str, size: int, actor: Actor) -> Upload:
    """Return this device's upload row for the file, locked for this request (a second part of it waits)."""
    mine = (Upload.device_id == actor.device_id) & (Upload.sha256 == sha256)
    taken = session.execute(update(Upload).where(mine).values(updated_at=utcnow()))
    if taken.rowcount == 0:
        _check_room(session, actor.device_id, size)
        try:
            with session.begin_nested():
                session.add(Upload(device_id=actor.device_id, sha256=sha256, size=size))
                session.flush()
        except IntegrityError:
            # The same device started the same file at the same moment: wait for its lock, then go on from there.
            session.execute(update(Upload).where(mine).values(updated_at=utcnow()))
    return session.get(Upload, (actor.device_id, sha256), populate_existing=True)


def _check_room(session: Session, device_id: object, size: int) -> None:
    """Refuse to start another file on a device that already has as many part-sent files as it may."""
    count, declared = session.exec(select(func.count(), func.coalesce(func.sum(Upload.size), 0)).where(
        Upload.device_id == device_id)).one()
    if count >= MAX_UNFINISHED or declared + size > MAX_UNFINISHED_BYTES:
        raise MediaRefused("too_many_uploads", f"This device already has {count} files part-sent "
                           f"({declared / MB:.0f} MB). Finish sending them before starting another: a device may "
                           f"have {MAX_UNFINISHED} files, {MAX_UNFINISHED_BYTES // MB} MB in all, part-sent at once.",
                           limit=MAX_UNFINISHED)


def _append(path: Path, received: int, offset: int, size: int, stream: BinaryIO) -> int:
    """Append the new bytes of a part to the spool file; return how many bytes the file now holds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    skip, written = received - offset, 0  # bytes of this part the centre already has
    with open(path, "ab" if path.exists() else "wb") as out:
        out.truncate(received)  # a crash mid-part may have left bytes the database never counted
        out.seek(received)
        while chunk := stream.read(CHUNK):
            if skip:
                drop = min(skip, len(chunk))
                chunk, skip = chunk[drop:], skip - drop
            room = size - received - written
            if len(chunk) > room:
                raise MediaRefused("too_long", f"The file is longer than the {size} bytes declared for it.",
                                   received=received + written)
            out.write(chunk)
            written += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    return received + written


def _check_head(session: Session, upload: Upload, path: Path, *, whole: bool) -> None:
    """Refuse a file whose first bytes show a type the centre does not take, or one too large for its type.

    Until the whole head has arrived, a type that cannot be told yet is given the benefit of the doubt.
    """
    with open(path, "rb") as source:
        head = source.read(HEAD)
    try:
        category = pipeline._identify(head, "", None).category
    except InvalidInput:
        if not whole:
            return
        _discard(session, upload, path)
        raise MediaRefused("unsupported_media", UNSUPPORTED) from None
    if upload.size > LIMITS[category]:
        _discard(session, upload, path)
        raise MediaRefused("too_large", f"The file is larger than the {LIMITS[category] / MB:g} MB allowed for "
                                        f"{pipeline.NOUNS[category]}.", limit=LIMITS[category])


def _finish(session: Session, storage: Storage, actor: Actor, upload: Upload, path: Path) -> Blob:
    """Verify a fully received file and store it by its hash; refuse it if it is not what it claims."""
    digest, size = _hash(path)
    if digest != upload.sha256 or size != upload.size:
        raise MediaRefused("hash_mismatch", "The file that arrived does not match its sha256, so it was discarded. "
                                            "The device will send it again from the start.")
    with open(path, "rb") as source:
        head = source.read(HEAD)
    try:
        kind = pipeline.sniff(head, "", path)
    except InvalidInput:
        raise MediaRefused("unsupported_media", UNSUPPORTED) from None
    limit = LIMITS[kind.category]
    if size > limit:
        raise MediaRefused("too_large", f"The file is larger than the {limit / MB:g} MB allowed for "
                                        f"{pipeline.NOUNS[kind.category]}.", limit=limit)
    if kind.category == "image":
        _check_clean(path)
    storage.put_file(path, upload.sha256)
    blob = record_blob(session, upload.sha256, size, kind.media_type)
    if kind.category == "image":
        _renditions(session, storage, path, blob)
    hold(session, blob.sha256, actor.id)
    record(session, actor, "blob.received", blob, size=size, media_type=kind.media_type)
    _discard(session, upload, path)
    return blob


def _hash(path: Path) -> tuple[str, int]:
    digest, size = hashlib.sha256(), 0
    with open(path, "rb") as source:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _check_clean(path: Path) -> None:
    """Refuse a photo that still carries EXIF, GPS or XMP metadata: it was not cleaned on the device."""
    from PIL import Image

    try:
        with Image.open(path, formats=pipeline.PILLOW_FORMATS) as image:
            dirty = bool(image.getexif()) or any(key in image.info for key in METADATA_KEYS)
    except Exception:  # noqa: BLE001 - anything Pillow cannot read is not a photo we can show
        raise MediaRefused("unsupported_media", "The photo could not be read; take or choose it again.") from None
    if dirty:
        raise MediaRefused("media_not_clean", "The photo still carries EXIF, GPS or other metadata. The device "
                                              "must clean photos before sending them; update the app.")


def _renditions(session: Session, storage: Storage, path: Path, blob: Blob) -> None:
    """Store the screen-size copy and thumbnail the portfolio pages show, as for a photo uploaded on the web."""
    try:
        pipeline.add_renditions(session, storage, path, blob.sha256)
    except Refusal:
        log.warning("photo %s: no screen copy or thumbnail could be made", blob.sha256, exc_info=True)


def _discard(session: Session, upload: Upload, path: Path) -> None:
    session.delete(upload)
    session.flush()
    path.unlink(missing_ok=True)


def discard_abandoned(session: Session, storage: Storage, untouched_since: datetime) -> list[Upload]:
    """Discard uploads no part has reached since a moment (a device lost or wiped mid-file): their rows and spooled
    parts go, with an audit entry each; a device that comes back sends the file again from its start."""
    stale = list(session.exec(select(Upload).where(Upload.updated_at < untouched_since).order_by(
        Upload.sha256, Upload.device_id)))
    for upload in stale:
        record(session, SYSTEM, "upload.discarded", upload, received=upload.received, size=upload.size,
               device=str(upload.device_id))
        _discard(session, upload, spool_path(storage, upload.sha256, upload.device_id))
    return stale


def open_blob(storage: Storage, sha256: str) -> BinaryIO:
    """Open a stored file for reading."""
    return storage.open(check_hash(sha256))
