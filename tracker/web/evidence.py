"""Evidence pages: record each method, read a piece of evidence and its versions, sign, submit, review, revise."""
import base64
import binascii
import io
import uuid

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import login_required
from sqlmodel import Session, col, select

from .. import access, media, readcache
from ..db import get_session
from ..errors import InvalidInput, NotFound, NotPermitted, Refusal
from ..models import Blob, Evidence, EvidenceReview, EvidenceVersion, Method, RangeItem, Role, Status, User, new_id
from ..services import evidence as service
from ..services.assessment import criteria_of
from .auth import actor, me
from .extensions import htmx
from .forms import Form, form_from

bp = Blueprint("evidence", __name__)

METHOD_TITLES = {
    Method.OBSERVATION: "Record an observation",
    Method.WORK_PRODUCT: "Add a work product",
    Method.WITNESS_TESTIMONY: "Witness testimony",
    Method.PROFESSIONAL_DISCUSSION: "Record a professional discussion",
    Method.QUESTIONING: "Record questioning",
}
FIELDS = ("title", "activity_date", "setting", "setting_detail", "narrative", "location", "witness_name",
          "witness_role", "witness_relationship", "witness_contact", "criteria", "files", "range_items",
          "countersignature", "witness_signature", "declaration", "method", "observer", "attachments")
MAX_SIGNATURE = 512 * 1024
UPLOAD_FIELDS = {"file": "files"}  # a refused upload is shown beside the files field


def storage():  # noqa: ANN201
    """Return the app's blob storage."""
    return current_app.extensions["storage"]


# --- Capture -------------------------------------------------------------------------------------------


@bp.route("/candidates/<candidate_id>/evidence/new/<method>", methods=["GET", "POST"])
@login_required
def create(candidate_id: str, method: str):  # noqa: ANN201
    """Show the form for a method and record the evidence; a refusal comes back beside its field."""
    session = get_session()
    candidate, relation = access.candidate_for(session, me(), candidate_id)
    service._check_may_capture(session, actor(), candidate, method)  # 403 before a form they could never send
    form = form_from(request.form if request.method == "POST" else _defaults(method), *FIELDS)
    if request.method == "POST":
        try:
            data = _capture_input(session, form, candidate.id, method)
            item = service.capture(session, actor(), data)
            session.commit()
        except Refusal as refusal:
            session.rollback()
            return _form_page(candidate, relation, method, form.refuse(refusal, UPLOAD_FIELDS), None), 422
        flash(_saved_message(item), "success")
        return redirect(url_for("evidence.detail", evidence_id=item.id), 303)
    return _form_page(candidate, relation, method, form, None)


def _defaults(method: str) -> dict:
    """Start a form with today's date and, for a witness with an account, their own name."""
    values = {"activity_date": "", "method": method, "evidence_id": str(new_id())}
    if method == Method.WITNESS_TESTIMONY and Role.WITNESS in me().role_names:
        values["witness_name"] = me().name
    return values


def _saved_message(item: Evidence) -> str:
    return "Saved as a draft." if item.status == Status.DRAFT else "Submitted for assessment."


def _capture_input(session: Session, form: Form, candidate_id: uuid.UUID, method: str) -> dict:
    """Turn the posted form (and its files) into the capture service's input."""
    data = _content_input(session, form)
    data |= {"candidate_id": candidate_id, "unit": "002", "method": method,
             "submit": form.get("action") == "submit", "id": form.get("evidence_id") or None}
    data["signatures"] = _signatures(session, form, method, data["submit"])
    return data


def _content_input(session: Session, form: Form) -> dict:
    """Read the content fields every method shares, storing uploaded files first so a refusal keeps them."""
    kept = _kept_uploads(session, form)
    criteria = [{"code": c, "note": form.get(f"note-{c}", "")} for c in form.getlist("criteria")]
    form.values.setlist("kept", [f"{a['sha256']}|{a['filename']}" for a in kept])
    return {
        "title": form.get("title"), "activity_date": form.get("activity_date") or None,
        "setting": form.get("setting") or None, "setting_detail": form.get("setting_detail") or None,
        "narrative": form.get("narrative"), "seen_in_place": form.get("seen_in_place") == "yes",
        "location": form.get("location") or None, "witness_name": form.get("witness_name") or None,
        "witness_role": form.get("witness_role") or None,
        "witness_relationship": form.get("witness_relationship") or None,
        "witness_contact": form.get("witness_contact") or None,
        "witness_related": form.get("witness_related") == "yes",
        "criteria": criteria, "range_items": form.getlist("range_items"), "attachments": kept,
    }


def _kept_uploads(session: Session, form: Form) -> list[dict]:
    """Store newly uploaded files, and keep the ones uploaded on an earlier, refused attempt."""
    kept = [dict(zip(("sha256", "filename"), k.split("|", 1), strict=True)) for k in form.getlist("kept") if "|" in k]
    try:
        for upload in request.files.getlist("files"):
            if not upload or not upload.filename:
                continue
            stored = media.ingest(session, storage(), upload.stream, upload.filename, upload.mimetype,
                                  holder=me().id)
            session.commit()  # a stored file outlives a refused form, so the person need not upload it again
            if stored.sha256 not in {k["sha256"] for k in kept}:
                kept.append({"sha256": stored.sha256, "filename": stored.filename})
    finally:  # when one file is refused, the ones stored before it are still offered as already uploaded
        form.values.setlist("kept", [f"{a['sha256']}|{a['filename']}" for a in kept])
    return kept


def _signatures(session: Session, form: Form, method: str, submitting: bool) -> list[dict]:
    """Collect the signatures given on the form: drawn on the screen, or typed as a name."""
    sigs = []
    if method == Method.OBSERVATION and _signed(form, "countersignature"):
        sigs.append({"kind": "countersignature", "image_sha256": _signature_image(session, form, "countersignature")})
    if method == Method.OBSERVATION and submitting:
        sigs.append({"kind": "observer"})
    if method == Method.WITNESS_TESTIMONY and _signed(form, "witness_signature"):
        sigs.append({"kind": "witness", "signer_name": form.get("witness_name") or None,
                     "image_sha256": _signature_image(session, form, "witness_signature")})
    if form.get("declaration") == "yes":
        sigs.append({"kind": "authenticity"})
    return sigs


def _signed(form: Form, name: str) -> bool:
    return bool(form.get(f"{name}_image") or form.get(f"{name}_name", "").strip())


def _signature_image(session: Session, form: Form, name: str) -> str | None:
    """Store a signature drawn on the screen (a PNG data URL) and return its hash."""
    data_url = form.get(f"{name}_image", "")
    if not data_url:
        return None
    prefix = "data:image/png;base64,"
    try:
        raw = base64.b64decode(data_url.removeprefix(prefix), validate=True) if data_url.startswith(prefix) else b""
    except binascii.Error:
        raw = b""
    if not raw or len(raw) > MAX_SIGNATURE:
        raise InvalidInput("The signature could not be read: clear it and sign again.", field=name)
    stored = media.ingest(session, storage(), io.BytesIO(raw), "signature.png", "image/png", holder=me().id)
    session.commit()
    return stored.sha256


def _form_page(candidate, relation, method: str, form: Form, item: Evidence | None):  # noqa: ANN001, ANN202
    """Render the capture or revise form for a method."""
    session = get_session()
    unit = service.unit_for(session, candidate, "002")
    criteria = criteria_of(session, unit)
    items = session.exec(select(RangeItem).where(
        RangeItem.criterion_id.in_([c.id for c in criteria]), RangeItem.retired == False)  # noqa: E712
        .order_by(RangeItem.position)).all()
    by_criterion: dict[int, list[RangeItem]] = {}
    for r in items:
        by_criterion.setdefault(r.criterion_id, []).append(r)
    name = session.get(User, candidate.user_id).name
    return render_template("evidence/form.html", candidate=candidate, name=name, method=method,
                           title=METHOD_TITLES.get(method, "Record evidence"), form=form, unit=unit,
                           outcomes=unit.outcomes, criteria=criteria, range_items=by_criterion, item=item,
                           settings=[(s.code, s.label) for s in unit.strategy.settings], relation=relation, is_candidate="self" in relation)


# --- Reading -----------------------------------------------------------------------------------------------


@bp.get("/evidence/<evidence_id>")
@login_required
def detail(evidence_id: str):  # noqa: ANN201
    """Show a piece of evidence: its current (or a chosen) version, files, signatures, reviews and actions."""
    session, user = get_session(), me()
    try:
        key = uuid.UUID(evidence_id)
    except ValueError:
        raise NotFound("evidence") from None
    stamp = readcache.evidence_stamp(session, key)
    wanted = request.args.get("version", type=int)
    # The page (access decision included) stands until the candidate's audit trail moves: assignments, new
    # versions, signatures and reviews are all audited under the candidate.
    context = current_app.extensions["read_cache"].get(
        ("evidence", key, user.id, wanted), stamp, lambda: _detail_context(session, user, key, wanted))
    return render_template("evidence/detail.html", **context, form=form_from(), me=user)


def _detail_context(session: Session, user, evidence_id: uuid.UUID, wanted: int | None) -> dict:  # noqa: ANN001
    """Load everything the evidence page shows, for a person who may read it."""
    item, relation = access.evidence_for(session, user, evidence_id)
    return _context(session, item, relation, wanted)


def _detail_page(session: Session, item: Evidence, relation: frozenset[str], form: Form, status: int = 200):
    context = _context(session, item, relation, request.args.get("version", type=int))
    return render_template("evidence/detail.html", **context, form=form, me=me()), status


def _context(session: Session, item: Evidence, relation: frozenset[str], wanted: int | None) -> dict:
    versions = list(session.exec(select(EvidenceVersion).where(EvidenceVersion.evidence_id == item.id)
                                 .order_by(EvidenceVersion.number)))
    version = next((v for v in versions if v.number == (wanted or item.current_version)), versions[-1])
    reviews = session.exec(select(EvidenceReview, User.name).join(User, User.id == EvidenceReview.reviewer_id).where(
        EvidenceReview.evidence_id == item.id).order_by(EvidenceReview.created_at)).all()
    content = service.content_of(session, version)
    list(version.signatures)  # loaded now: the page may be served again after this session has closed
    candidate = session.get(service.Candidate, item.candidate_id)
    names = dict(session.exec(select(User.id, User.name).where(
        User.id.in_({v.author_id for v in versions} | {candidate.user_id}))).all())
    return {"item": item, "version": version, "versions": versions, "content": content, "reviews": reviews,
            "relation": relation, "names": names, "candidate": candidate, "candidate_name": names[candidate.user_id],
            "is_assessor": Role.ASSESSOR in relation, "photos": _photos(session, version)}


def _photos(session: Session, version: EvidenceVersion) -> set[str]:
    """Return which of a version's files are photos, shown as pictures rather than only as links."""
    hashes = [a.sha256 for a in version.attachments]
    return set(session.exec(select(Blob.sha256).where(col(Blob.sha256).in_(hashes),
                                                      col(Blob.media_type).startswith("image/")))) if hashes else set()


# --- Actions -----------------------------------------------------------------------------------------------


def _act(evidence_id: str, do, success: str):  # noqa: ANN001, ANN202
    """Run an action on evidence; on refusal show the evidence again with the message beside the form."""
    session = get_session()
    item, relation = access.evidence_for(session, me(), evidence_id)
    form = form_from(request.form, "feedback", "outcome", "kind", "signature")
    try:
        do(session, item, form)
        session.commit()
    except Refusal as refusal:
        session.rollback()
        if isinstance(refusal, NotPermitted):
            raise  # a role that may never do this gets 403, not a form to correct
        item, relation = access.evidence_for(session, me(), evidence_id)
        return _detail_page(session, item, relation, form.refuse(refusal, {"status": "outcome"}),
                            200 if htmx else 409 if refusal.kind == "conflict" else 422)
    flash(success, "success")
    return redirect(url_for("evidence.detail", evidence_id=item.id), 303)


@bp.post("/evidence/<evidence_id>/submit")
@login_required
def submit(evidence_id: str):  # noqa: ANN201
    """Submit a draft for assessment."""
    return _act(evidence_id, lambda s, item, f: service.submit(s, actor(), item.id), "Submitted for assessment.")


@bp.post("/evidence/<evidence_id>/sign")
@login_required
def sign(evidence_id: str):  # noqa: ANN201
    """Sign the current version: the candidate's declaration or countersignature, or the observer's."""
    def do(session, item, form):  # noqa: ANN001, ANN202
        kind = form.get("kind")
        image = _signature_image(session, form, "signature") if form.get("signature_image") else None
        if kind == "countersignature" and not (image or form.get("signature_name", "").strip()):
            raise InvalidInput("Sign in the box, or type your full name, to countersign.", field="signature")
        service.sign(session, actor(), item.id, {"kind": kind, "image_sha256": image})

    return _act(evidence_id, do, "Signed.")


@bp.post("/evidence/<evidence_id>/review")
@login_required
def review(evidence_id: str):  # noqa: ANN201
    """Accept or refer the evidence, with feedback."""
    def do(session, item, form):  # noqa: ANN001, ANN202
        service.review(session, actor(), item.id, form.get("outcome"), form.get("feedback"))

    return _act(evidence_id, do, "Decision recorded.")


@bp.route("/evidence/<evidence_id>/revise", methods=["GET", "POST"])
@login_required
def revise(evidence_id: str):  # noqa: ANN201
    """Change evidence: a draft in place while unsigned, otherwise as a new version (the old one stays)."""
    session = get_session()
    item, relation = access.evidence_for(session, me(), evidence_id)
    candidate = session.get(service.Candidate, item.candidate_id)
    access.require(item.created_by_id == me().id, "Only the person who recorded this evidence can change it.")
    if request.method == "GET":
        return _form_page(candidate, relation, item.method, _form_of(session, item), item)
    form = form_from(request.form, *FIELDS)
    try:
        data = _content_input(session, form)
        version = service.current_version(session, item)
        if item.status == Status.DRAFT and not version.signatures:
            service.update_draft(session, actor(), item.id, data)
        else:
            service.revise(session, actor(), item.id, data, base_version=request.form.get("base_version", type=int),
                           signatures=[service.SignatureIn.model_validate(s) for s in
                                       _signatures(session, form, item.method, item.status != Status.DRAFT)])
        session.commit()
    except Refusal as refusal:
        session.rollback()
        return _form_page(candidate, relation, item.method, form.refuse(refusal, UPLOAD_FIELDS), item), 422
    flash("Your changes are saved." if item.status == Status.DRAFT else "Resubmitted as a new version.", "success")
    return redirect(url_for("evidence.detail", evidence_id=item.id), 303)


def _form_of(session: Session, item: Evidence) -> Form:
    """Fill the form from the current version."""
    version = service.current_version(session, item)
    content = service.content_of(session, version)
    values = {name: getattr(content, name) or "" for name in service.CONTENT_FIELDS}
    values |= {"seen_in_place": "yes" if content.seen_in_place else "",
               "witness_related": "yes" if content.witness_related else "",
               "base_version": str(version.number)}
    form = form_from(values, *FIELDS)
    form.values.setlist("criteria", [c.code for c in content.criteria])
    for c in content.criteria:
        form.values[f"note-{c.code}"] = c.note
    form.values.setlist("range_items", content.range_items)
    form.values.setlist("kept", [f"{a.sha256}|{a.filename}" for a in content.attachments])
    return form
