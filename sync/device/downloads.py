"""A field device fetches the files of the evidence it pulled: streamed to a spool file, verified, stored (G6, G19).

A pull brings the rows (attachments, signatures and the blob row naming each file's sha256, size and type) but not
the bytes. After every pull the device asks the centre for each file its evidence names and its storage lacks. The
answer is written to a private spool file in chunks while it is hashed, never held whole in memory; only a 200 of
the blob's own type whose bytes hash to its name and have its size is stored, with the storage's `put_file`, which
writes, fsyncs and renames into place. Anything else is discarded whole and tried again at the next sync. A photo
gets its screen copy and thumbnail made here with the centre's media pipeline before the photo itself is stored,
so no stored photo is ever without them.
"""
import hashlib
import logging
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tracker import media
from tracker.db import transaction
from tracker.errors import Refusal
from tracker.models import Attachment, Blob, Signature
from tracker.storage import Storage

log = logging.getLogger(__name__)

# Fetches a path, writing a 200 answer's body to the file given; returns the answer (status, headers, JSON body).
Fetch = Callable[[str, BinaryIO], Any]


class Digesting:
    """A file being written that hashes and counts the bytes as they pass."""

    def __init__(self, out: BinaryIO):
        self.out, self.digest, self.size = out, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        """Write bytes, hashing and counting them."""
        self.digest.update(data)
        self.size += len(data)
        return self.out.write(data)


def missing(session: Session, storage: Storage) -> list[Blob]:
    """Return the files the device's evidence names (attachments, signature images) that its storage lacks."""
    named = col(Blob.sha256).in_(select(Attachment.sha256)) | col(Blob.sha256).in_(
        select(Signature.image_sha256).where(col(Signature.image_sha256).is_not(None)))
    return [b for b in session.exec(select(Blob).where(named).order_by(Blob.sha256)) if not storage.exists(b.sha256)]


def waiting_note(count: int) -> str:
    """Say how many files are still to come from the centre, or nothing when none are."""
    if not count:
        return ""
    return (f"{count} file{'' if count == 1 else 's'} still to download from the centre; "
            f"{'it comes' if count == 1 else 'they come'} with the next sync.")


def fetch(engine: Engine, storage: Storage, get: Fetch, blob: Blob) -> bool:
    """Download one file, verify it against its blob row and store it; say whether it is now stored.

    The transport's Unreachable (the network went, the answer was cut off) is left to the caller.
    """
    spool_dir = Path(storage.spool_dir)
    spool_dir.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=spool_dir, prefix="download-")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as out:
            written = Digesting(out)
            answer = get(f"/api/v1/media/{blob.sha256}", written)
        problem = refusal(answer, blob, written)
        if problem:
            log.warning("file %s not stored: %s; it is tried again at the next sync", blob.sha256, problem)
            return False
        _store(engine, storage, path, blob)
        return True
    finally:
        path.unlink(missing_ok=True)


def refusal(answer: Any, blob: Blob, written: Digesting) -> str | None:
    """Say why an answer is not the file its blob row names, or None when it is exactly that file."""
    if answer.status == 404:
        return "the centre no longer has it in this device's caseload"
    if answer.status != 200:
        found = answer.json()
        return f"HTTP {answer.status} ({found.get('error') if isinstance(found, dict) else 'not JSON'})"
    media_type = answer.headers.get("content-type", "").split(";")[0].strip().lower()
    if media_type != blob.media_type.lower():
        return f"the answer was {media_type or 'untyped'}, not {blob.media_type}"
    if written.size != blob.size or written.digest.hexdigest() != blob.sha256:
        return f"the {written.size} bytes received do not match its sha256 and size ({blob.size} bytes)"
    return None


def _store(engine: Engine, storage: Storage, path: Path, blob: Blob) -> None:
    """Store a verified file; a photo's screen copy and thumbnail go in first, so none is stored without them."""
    if blob.media_type.startswith("image/"):
        with transaction(engine) as session:
            try:
                media.add_renditions(session, storage, path, blob.sha256)
            except Refusal:
                log.warning("photo %s: no screen copy or thumbnail could be made", blob.sha256, exc_info=True)
    storage.put_file(path, blob.sha256)
