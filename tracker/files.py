"""Serving stored files to the people allowed to read the evidence they belong to."""
from flask import Blueprint, Response, current_app, request, send_file
from flask_login import login_required

from . import access
from .auth import me
from .db import get_session
from .errors import NotFound, Refusal
from .models import Blob
from .services import evidence as evidence_service

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
    response = send_file(storage.open(wanted), mimetype="image/jpeg" if wanted != blob.sha256 else blob.media_type,
                         as_attachment=not inline, download_name=name, conditional=True, etag=wanted,
                         max_age=3600)
    response.headers["Content-Security-Policy"] = "default-src 'none'; img-src 'self'; media-src 'self'; sandbox"
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response


def _derived(blob: Blob, size: str) -> str:
    """Return the hash of a derived image size, falling back to the original."""
    from . import media

    return media.derived_sha256(get_session(), blob.sha256, size) or blob.sha256
