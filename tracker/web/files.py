"""Serving stored files to the people allowed to read the evidence they belong to."""
from typing import BinaryIO

from flask import Blueprint, Response, current_app, request, send_file
from flask_login import login_required

from .. import access
from ..db import get_session
from ..errors import NotFound, Refusal
from ..models import Blob
from ..services import evidence as evidence_service
from ..storage import Storage
from .auth import me

bp = Blueprint("files", __name__, url_prefix="/files")
INLINE = ("image/jpeg", "image/png", "image/webp", "application/pdf", "audio/", "video/")


def _check_readable(sha256: str) -> Blob:
    """Refuse (as not found) a file that belongs to no evidence this person may read."""
    session = get_session()
    blob = session.get(Blob, sha256)
    for evidence_id in evidence_service.attached_to(session, sha256) if blob else ():
        try:
            access.evidence_for(session, me(), evidence_id)
            return blob
        except Refusal:
            continue
    raise NotFound("file")


@bp.get("/<sha256>/<path:name>")
@login_required
def download(sha256: str, name: str) -> Response:
    """Send a stored file: images, PDFs, audio and video inline, anything else as a download."""
    blob = _check_readable(sha256)
    storage = current_app.extensions["storage"]
    size = request.args.get("size")
    wanted = _derived(blob, size) if size in ("thumb", "screen") else blob.sha256
    inline = blob.media_type.startswith(INLINE)
    response = send_file(_open(storage, wanted), mimetype="image/jpeg" if wanted != blob.sha256 else blob.media_type,
                         as_attachment=not inline, download_name=name, conditional=True, etag=wanted,
                         max_age=3600)
    response.headers["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; media-src 'self'; sandbox"
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


class NotDownloaded(NotFound):
    """A file a field device has the record of but not yet the bytes: they come with the next sync."""

    def __init__(self) -> None:
        Refusal.__init__(self, "not_downloaded", "This file has not reached this device yet. It is downloaded from "
                                                 "the centre at the next sync; open it again after that.")


def _open(storage: Storage, sha256: str) -> BinaryIO:
    """Open a stored file; on a field device, one not downloaded yet is a page that says so."""
    try:
        return storage.open(sha256)
    except FileNotFoundError:
        if not current_app.config.get("FIELD_MODE"):
            raise  # on the centre a missing file is a fault to log, not something to wait for
        raise NotDownloaded() from None


def _derived(blob: Blob, size: str) -> str:
    """Return the hash of a derived image size, falling back to the original."""
    from .. import media

    return media.derived_sha256(get_session(), blob.sha256, size) or blob.sha256
