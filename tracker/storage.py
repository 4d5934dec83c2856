"""File storage by sha256: the same bytes are kept once, written whole before anything refers to them."""
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import BinaryIO

from sqlmodel import Session

from .errors import InvalidInput
from .models import Blob

CHUNK = 1024 * 1024
SHA256 = re.compile(r"^[0-9a-f]{64}$")


class LocalStorage:
    """Blobs in a folder, fanned out by the first two bytes of their hash."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

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
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(exist_ok=True)
        digest, size = hashlib.sha256(), 0
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir)
        try:
            with os.fdopen(fd, "wb") as out:
                while chunk := stream.read(CHUNK):
                    size += len(chunk)
                    if size > max_size:
                        raise InvalidInput(f"The file is larger than the {max_size // (1024 * 1024)} MB allowed.",
                                           field="file")
                    digest.update(chunk)
                    out.write(chunk)
                if size == 0:
                    raise InvalidInput("The file is empty.", field="file")
                out.flush()
                os.fsync(out.fileno())  # a power cut must not leave a row pointing at a partial file
            final = self.path(digest.hexdigest())
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(tmp_name, final)
            return digest.hexdigest(), size
        finally:
            if os.path.exists(tmp_name):
                os.unlink(tmp_name)

    def open(self, sha256: str) -> BinaryIO:
        """Open a stored blob for reading."""
        return open(self.path(sha256), "rb")


def store(session: Session, storage: LocalStorage, stream: BinaryIO, media_type: str, max_size: int) -> Blob:
    """Store a file and its Blob row; storing the same bytes again returns the existing row."""
    sha256, size = storage.put(stream, max_size)
    blob = session.get(Blob, sha256)
    if blob is None:
        blob = Blob(sha256=sha256, size=size, media_type=media_type)
        session.add(blob)
        session.flush()
    return blob
