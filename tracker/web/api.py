"""The field sync API under /api/v1: JSON in and out, device bearer tokens, version checks on every request."""
import re
from datetime import timedelta
from functools import wraps

from flask import Blueprint, Response, current_app, g, jsonify, request
from sqlalchemy.exc import OperationalError
from sqlmodel import col, select
from werkzeug.exceptions import ClientDisconnected, HTTPException

from sync import PROTOCOL_VERSION, SCHEMA_VERSION
from sync.centre import media as media_sync
from sync.centre import pull as pull_sync
from sync.centre import receipts
from sync.centre.push import apply_batch
from sync.centre.tokens import authenticate, issue_token

from .. import clock
from ..audit import Actor
from ..db import get_session
from ..errors import InvalidInput, Refusal
from ..models import Attachment, Blob, Evidence, EvidenceVersion, Role, Signature, utcnow
from ..services import people
from . import openapi
from .auth import TOO_MANY, attempt, waiting
from .extensions import csrf

bp = Blueprint("api", __name__, url_prefix="/api")
csrf.exempt(bp)  # the API authenticates with bearer tokens, never with cookies

PROTOCOLS = [PROTOCOL_VERSION]
BATCH_ITEMS = openapi.BATCH_ITEMS
TOKEN_LIFETIME = timedelta(days=90)
FIELD_ROLES = (Role.ASSESSOR, Role.EXPERT_WITNESS)
SCHEMA_ID = re.compile(r"^\d{4}$")
VERSION_HEADERS = ("X-Tracker-Protocol", "X-Tracker-Schema")
KIND_STATUS = {"invalid": 400, "forbidden": 403, "not_found": 404, "unauthenticated": 401, "resync": 409,
               "conflict": 409}
MEDIA_STATUS = {"too_large": 413, "too_long": 413, "hash_mismatch": 422, "media_not_clean": 422,
                "unsupported_media": 415, "upload_gap": 409, "size_changed": 409, "too_many_uploads": 409}
HTTP_CODES = {400: "bad_request", 401: "token_invalid", 404: "not_found", 405: "method_not_allowed",
              413: "too_large", 415: "unsupported_media_type", 429: "rate_limited"}


def error(code: str, message: str, status: int, **extra: object) -> Response:
    """Return the API's JSON error body with a status."""
    response = jsonify({"error": code, "message": message, **extra})
    response.status_code = status
    return response


# --- Every request -----------------------------------------------------------------------------------------


@bp.before_request
def _check_versions() -> Response | None:
    """Answer 426 to a device whose protocol is unknown or whose schema is newer than this centre's (G17)."""
    if not request.path.startswith("/api/v1/"):
        return None
    missing = [name for name in VERSION_HEADERS if name not in request.headers]
    if missing:
        return error("missing_version", f"Send {' and '.join(missing)} with every request, naming the sync protocol "
                     "and the database schema this app speaks.", 400, field=missing[0])
    protocol, schema = request.headers["X-Tracker-Protocol"], request.headers["X-Tracker-Schema"]
    if protocol.strip() in {str(p) for p in PROTOCOLS} and SCHEMA_ID.match(schema) and schema <= SCHEMA_VERSION:
        g.device_schema = schema
        return None
    return error("upgrade_required", "This app and the centre do not speak the same version of the sync protocol. "
                 "Update the app (or ask the centre to update the server); everything waiting to be sent stays "
                 "on the device.", 426, protocols=PROTOCOLS, schema=SCHEMA_VERSION)


@bp.errorhandler(Refusal)
def _refused(refusal: Refusal) -> Response:
    """Answer a refusal as JSON with its code, and the status its kind calls for."""
    get_session().rollback()
    if isinstance(refusal, media_sync.MediaRefused):
        return error(refusal.code, refusal.message, MEDIA_STATUS.get(refusal.code, 422), **refusal.extra)
    extra = {"field": refusal.field} if refusal.field else {}
    return error(refusal.code, refusal.message, KIND_STATUS.get(refusal.kind, 422), **extra)


def _http_error(exc: HTTPException) -> Response | HTTPException:
    """Answer HTTP errors on the API as JSON, with the headers they carry (Allow); elsewhere leave them to pages."""
    if not request.path.startswith("/api/"):
        return exc
    status = exc.code or 500
    message = {
        404: "There is no such address in the sync API.", 405: "That method is not allowed here.",
        413: "The request is too large.",
    }.get(status, exc.description or "The request could not be read.")
    response = error(HTTP_CODES.get(status, "bad_request"), message, status)
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def too_large(exc: HTTPException) -> Response:
    """Answer a body over the route's limit as JSON."""
    return _http_error(exc)


def _server_error(exc: Exception) -> Response:
    """Answer an unexpected failure on the API as JSON, so the device keeps its queue and tries later."""
    if isinstance(exc, HTTPException):
        return _http_error(exc)
    current_app.logger.exception("sync API request failed", exc_info=exc)
    return error("server_error", "The centre could not answer just now. Nothing has been lost; the device will "
                 "try again.", 500)


@bp.record_once
def _register(state) -> None:  # noqa: ANN001
    state.app.register_error_handler(HTTPException, _http_error)


bp.register_error_handler(Exception, _server_error)
bp.register_error_handler(OperationalError, lambda exc: error(
    "server_busy", "The centre is busy. The device will try again shortly; nothing has been lost.", 503))


def _json_body() -> dict:
    """Return the request's JSON object, or refuse anything else."""
    data = request.get_json(silent=True)
    if not isinstance(data, dict):
        raise InvalidInput("Send a JSON object (Content-Type: application/json).", field="body")
    return data


def device_required(view):  # noqa: ANN001, ANN201
    """Authenticate the device by its bearer token before the view runs."""
    @wraps(view)
    def wrapped(*args, **kwargs):  # noqa: ANN202
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        session = get_session()
        g.device = authenticate(session, token.strip() if scheme.lower() == "bearer" else "", utcnow())
        g.user = people.get_user(session, g.device.user_id)
        return view(*args, **kwargs)
    return wrapped


def _actor() -> Actor:
    return Actor(g.user, device_id=g.device.id, today=clock.today())


# --- The routes ------------------------------------------------------------------------------------------------


@bp.get("/openapi.json")
def openapi_document() -> Response:
    """Return the OpenAPI 3.1 document of the sync API."""
    return jsonify(openapi.document())


@bp.get("/v1/hello")
def hello() -> Response:
    """Tell a device which protocols, schema and size limits this centre has."""
    return jsonify({"protocols": PROTOCOLS, "schema": SCHEMA_VERSION,
                    "limits": {**media_sync.limits(), "batch_items": BATCH_ITEMS}})


@bp.post("/v1/devices")
def enrol() -> Response:
    """Sign a person in on a device: check their password and role, and issue the device's token."""
    data = _json_body()
    fields = {k: data.get(k) for k in ("email", "password", "device_id", "name")}
    missing = [k for k, v in fields.items() if not isinstance(v, str) or not v.strip()]
    if missing:
        raise InvalidInput(f"Give {', '.join(missing)} as text.", field=missing[0])
    session = get_session()
    user, wait = attempt(fields["email"], fields["password"])
    if wait:
        response = error("rate_limited", TOO_MANY.format(wait=waiting(wait)), 429)
        response.headers["Retry-After"] = str(wait)
        return response
    if user is None:
        return error("bad_credentials", "The email address or password is not right.", 401)
    if not user.role_names & set(FIELD_ROLES):
        return error("not_permitted", "Only assessors and expert witnesses can use the field app.", 403)
    lifetime = timedelta(days=current_app.config.get("SYNC_TOKEN_DAYS", TOKEN_LIFETIME.days))
    device, token = issue_token(session, user, fields["device_id"], fields["name"], PROTOCOL_VERSION,
                                g.device_schema, lifetime)
    session.commit()
    response = jsonify({"token": token, "device_id": str(device.id), "expires_at": device.expires_at.isoformat(),
                        "user": {"id": str(user.id), "name": user.name, "email": user.email}})
    response.status_code = 201
    return response


@bp.post("/v1/push")
@device_required
def push() -> Response:
    """Apply a device's queued items, commit, then answer each item's verdict in the order sent."""
    items = _json_body().get("items")
    if not isinstance(items, list):
        raise InvalidInput("A push is {\"items\": [...]}, a list of queued items.", field="items")
    if len(items) > BATCH_ITEMS:
        return error("batch_too_large", f"Send at most {BATCH_ITEMS} items at a time.", 413, limit=BATCH_ITEMS)
    session = get_session()
    verdicts = apply_batch(session, g.device, g.user, items, clock.today())
    session.commit()  # the answers are sent only once what they say is stored
    return jsonify({"verdicts": [v.as_dict() for v in verdicts]})


@bp.get("/v1/pull")
@device_required
def pull() -> Response:
    """Return the next page of the device's scoped snapshot."""
    raw = request.args.get("limit", str(pull_sync.DEFAULT_LIMIT))
    if not raw.isdigit() or not 1 <= int(raw) <= pull_sync.MAX_LIMIT:
        raise InvalidInput(f"limit is a number of candidates from 1 to {pull_sync.MAX_LIMIT}.", field="limit")
    session = get_session()
    page = pull_sync.pull(session, g.user, request.args.get("after"), int(raw))
    # The centre's clock, by which a device judges dates (G24), and what it holds from the device (G21).
    answer = page.as_dict() | {"now": clock.now().isoformat(), "acknowledged": receipts.acknowledged(session, g.device)}
    session.commit()  # the device's last-seen time
    return jsonify(answer)


@bp.post("/v1/receipts")
@device_required
def receipts_check() -> Response:
    """Name the items, of those a device holds answers for, that the centre no longer keeps (G21)."""
    session = get_session()
    lost = receipts.missing(session, g.device, _json_body().get("item_ids"))
    session.commit()
    return jsonify({"missing": lost})


@bp.get("/v1/uploads/<sha256>")
@device_required
def upload_state(sha256: str) -> Response:
    """Say how much of a file the centre has."""
    session = get_session()
    answer = media_sync.state(session, current_app.extensions["storage"], sha256, g.user, g.device.id)
    session.commit()
    return jsonify(answer.as_dict())


class _Body:
    """The request body as the part's bytes; a connection cut mid-part ends the part where it broke."""

    def __init__(self, stream):  # noqa: ANN001
        self.stream = stream

    def read(self, size: int = -1) -> bytes:
        """Read bytes; a dropped connection reads as the end of the part."""
        try:
            return self.stream.read(size)
        except (ClientDisconnected, OSError):
            return b""


def _int_arg(name: str) -> int | None:
    raw = request.args.get(name)
    return int(raw) if raw is not None and raw.isdigit() and len(raw) < 16 else None


@bp.put("/v1/uploads/<sha256>")
@device_required
def upload_part(sha256: str) -> Response:
    """Take one part of a file; answer 201 when the file is complete and stored."""
    session = get_session()
    storage = current_app.extensions["storage"]
    try:
        answer, finished = media_sync.receive_part(session, storage, _actor(), sha256, _int_arg("size"),
                                                   _int_arg("offset"), _Body(request.stream), request.content_length)
    except media_sync.MediaRefused as refusal:
        session.commit()  # a discarded upload stays discarded
        return error(refusal.code, refusal.message, MEDIA_STATUS.get(refusal.code, 422), **refusal.extra)
    session.commit()
    response = jsonify(answer.as_dict())
    response.status_code = 201 if finished else 200
    return response


@bp.get("/v1/media/<sha256>")
@device_required
def media(sha256: str) -> Response:
    """Send a stored file, only if it belongs to evidence the device's person may see."""
    session = get_session()
    media_sync.check_hash(sha256)
    blob = session.get(Blob, sha256)
    if blob is None or not _in_scope(sha256):
        return error("not_found", "No such file in this device's caseload.", 404)
    stream = media_sync.open_blob(current_app.extensions["storage"], sha256)
    session.commit()
    response = Response(_chunks(stream), mimetype=blob.media_type)
    response.headers["Content-Length"] = str(blob.size)
    response.headers["Cache-Control"] = "private, max-age=31536000, immutable"
    return response


def _chunks(stream):  # noqa: ANN001, ANN202
    try:
        while chunk := stream.read(1024 * 1024):
            yield chunk
    finally:
        stream.close()


def _in_scope(sha256: str) -> bool:
    """Say whether a file is attached to (or signs) evidence in the device's scope, as pull would send it."""
    session = get_session()
    user_id = g.user.id
    scope = pull_sync._scope(session, user_id)
    if not scope:
        return False
    full = [c for c, roles in scope.items() if Role.ASSESSOR in roles]
    limited = [c for c in scope if c not in full]
    visible = col(Evidence.candidate_id).in_(full) | (col(Evidence.candidate_id).in_(limited)
                                                       & (Evidence.created_by_id == user_id))
    attached = select(Attachment.id).join(EvidenceVersion, Attachment.version_id == EvidenceVersion.id).join(
        Evidence, EvidenceVersion.evidence_id == Evidence.id).where(Attachment.sha256 == sha256, visible)
    signed = select(Signature.id).join(EvidenceVersion, Signature.version_id == EvidenceVersion.id).join(
        Evidence, EvidenceVersion.evidence_id == Evidence.id).where(Signature.image_sha256 == sha256, visible)
    return session.exec(attached.limit(1)).first() is not None or session.exec(signed.limit(1)).first() is not None

