"""Evidence: capture, edit, revise, submit, sign and review, each checked against the handbook rules."""
import uuid
from dataclasses import dataclass
from datetime import date
from types import SimpleNamespace
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator
from sqlmodel import Session, SQLModel, col, delete, select

from .. import access, clock, rules
from ..audit import Actor, Change, record, record_many, turn
from ..db import insert_many, insert_new
from ..errors import AlreadyDone, InvalidInput, NotFound, NotPermitted, Refusal
from ..hashing import content_hash
from ..models import (
    Attachment,
    Blob,
    BlobHolder,
    BlobRendition,
    Candidate,
    Criterion,
    Evidence,
    EvidenceCriterion,
    EvidenceRangeItem,
    EvidenceReview,
    EvidenceVersion,
    Method,
    Qualification,
    QualificationUnit,
    RangeItem,
    Role,
    Signature,
    SignatureKind,
    Status,
    Unit,
    UnitSignOff,
    User,
    new_id,
    utcnow,
)
from . import people, remembered, validate
from .inputs import ClientId, Day, Moment, line, paragraphs, text

SHA256 = r"^[0-9a-f]{64}$"
CONTENT_FIELDS = ("title", "activity_date", "setting", "setting_detail", "simulated", "narrative", "seen_in_place",
                  "location", "witness_name", "witness_role", "witness_relationship", "witness_contact",
                  "witness_related")
STATEMENTS = {
    SignatureKind.AUTHENTICITY: "I declare that this evidence is my own work, comes from my real work since I "
                                "registered, and does not identify the people I support.",
    SignatureKind.COUNTERSIGNATURE: "I confirm that this is a true record of the activity my assessor observed.",
    SignatureKind.WITNESS: "I confirm that this testimony is a true account of what I saw the candidate do.",
    SignatureKind.OBSERVER: "I confirm that I observed this activity and that this is a true record of it.",
}
REVISABLE = {Status.DRAFT, Status.SUBMITTED, Status.REFERRED, Status.RESUBMITTED}
WITH_SETTING = {Method.OBSERVATION, Method.WITNESS_TESTIMONY}


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class CriterionLink(_In):
    """A criterion the evidence covers, with a note on how."""

    code: line(40, min_length=1)
    note: paragraphs(5000) = ""


class AttachmentIn(_In):
    """A stored file to attach, by its hash."""

    sha256: str = Field(pattern=SHA256)
    filename: line(255, min_length=1)

    @field_validator("filename")
    @classmethod
    def _safe_name(cls, value: str) -> str:
        # A name from a device never passed the web upload's cleaning: no paths, markup or reserved names.
        from ..media import safe_filename

        return safe_filename(value)


class SignatureIn(_In):
    """A signature to add to the current version."""

    kind: SignatureKind
    signer_name: line(200) | None = None
    image_sha256: str | None = Field(default=None, pattern=SHA256)


class ContentIn(_In):
    """The content of one version of a piece of evidence."""

    title: line(200, min_length=1)
    activity_date: Day
    setting: line(40) | None = None
    setting_detail: line(300) | None = None
    simulated: bool = False
    narrative: paragraphs(50_000, min_length=1)
    seen_in_place: bool = False
    location: line(300) | None = None
    witness_name: line(200) | None = None
    witness_role: line(200) | None = None
    witness_relationship: line(200) | None = None
    witness_contact: line(300) | None = None
    witness_related: bool = False
    criteria: list[CriterionLink] = Field(default_factory=list, max_length=200)
    range_items: list[line(200)] = Field(default_factory=list, max_length=500)
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=100)
    captured_at: Moment | None = None  # a device clock without a zone is UTC: metadata, never used for ordering


class EvidenceIn(ContentIn):
    """A new piece of evidence, as captured on a form, a device or the command line."""

    id: ClientId | None = None
    candidate_id: uuid.UUID
    unit: line(40, min_length=1) = "002"
    method: line(40, min_length=1)
    submit: bool = False
    signatures: list[SignatureIn] = Field(default_factory=list, max_length=10)


class _Resolved:
    """Content checked against the spec: criterion and range item rows, stored blobs."""

    def __init__(self, criteria: list[tuple[Criterion, str]], range_items: list[RangeItem],
                 attachments: list[AttachmentIn]):
        self.criteria, self.range_items, self.attachments = criteria, range_items, attachments


# --- Loading --------------------------------------------------------------------------------------


def get(session: Session, evidence_id: uuid.UUID | str) -> Evidence:
    """Return a piece of evidence by id, or refuse."""
    try:
        key = evidence_id if isinstance(evidence_id, uuid.UUID) else uuid.UUID(str(evidence_id))
    except ValueError:
        raise NotFound("evidence") from None
    evidence = session.get(Evidence, key, populate_existing=True)  # as stored now, not as this request first read it
    if evidence is None:
        raise NotFound("evidence")
    return evidence


def current_version(session: Session, evidence: Evidence) -> EvidenceVersion:
    """Return the version that counts now."""
    return session.exec(select(EvidenceVersion).where(
        EvidenceVersion.evidence_id == evidence.id, EvidenceVersion.number == evidence.current_version)
        .execution_options(populate_existing=True)).one()


def unit_for(session: Session, candidate: Candidate, code: str) -> Unit:
    """Return a unit of the candidate's qualification by code, or refuse."""
    unit = remembered(session, ("unit", candidate.qualification_id, code), lambda: session.exec(
        select(Unit).join(QualificationUnit, QualificationUnit.unit_id == Unit.id).where(
            QualificationUnit.qualification_id == candidate.qualification_id, Unit.code == code)).first())
    if unit is None:
        qualification = session.get(Qualification, candidate.qualification_id)
        raise InvalidInput(f"Unit {code} is not part of {qualification.code}.", field="unit")
    return unit


def locked_on(session: Session, candidate_id: uuid.UUID, unit_id: int) -> date | None:
    """Return the day a unit was signed off for a candidate, if it is locked."""
    row = remembered(session, ("signed_off", candidate_id, unit_id), lambda: session.exec(select(UnitSignOff).where(
        UnitSignOff.candidate_id == candidate_id, UnitSignOff.unit_id == unit_id,
        col(UnitSignOff.reopened_at).is_(None))).first())
    return clock.day_of(row.signed_at) if row else None


# --- Checks ------------------------------------------------------------------------------------


def _check_may_capture(session: Session, actor: Actor, candidate: Candidate, method: str) -> None:
    """Refuse capture by someone with no part in this candidate's assessment, or in the wrong part."""
    is_candidate = actor.id == candidate.user_id
    attached = people.assigned(session, candidate, actor.id, Role.ASSESSOR, Role.EXPERT_WITNESS, Role.WITNESS)
    if not (is_candidate or attached):
        raise NotPermitted("You can only record evidence for candidates you are assigned to.")
    if method == Method.WITNESS_TESTIMONY and is_candidate:
        raise NotPermitted("A candidate cannot write witness testimony: the witness gives it, in their own words, "
                           "or your assessor records it with them.")
    if method in (Method.PROFESSIONAL_DISCUSSION, Method.QUESTIONING) and not people.assigned(
            session, candidate, actor.id, Role.ASSESSOR):
        raise NotPermitted("Professional discussions and questioning are recorded by the candidate's assessor.")
    if method == Method.WORK_PRODUCT and not (is_candidate or people.assigned(session, candidate, actor.id,
                                                                               Role.ASSESSOR)):
        raise NotPermitted("Work products are provided by the candidate or recorded by their assessor.")


def _check_rules(session: Session, actor: Actor, candidate: Candidate, unit: Unit, method: str, content: ContentIn,
                 signed_by_witness: bool, submitting: bool) -> None:
    """Run every handbook rule that applies to this content, in the order a person would fix them."""
    strategy = remembered(session, ("strategy", unit.id), lambda: unit.strategy)
    rules.check_method(strategy, unit.code, method)
    rules.check_unit_unlocked(locked_on(session, candidate.id, unit.id), unit.code)
    rules.check_activity_date(content.activity_date, candidate.registration_date, actor.latest_activity or actor.today,
                              rpl_allowed=strategy.rpl_allowed)
    if method in WITH_SETTING or content.setting or content.simulated:
        rules.check_setting(strategy, content.setting, content.setting_detail, content.simulated)
    if method == Method.OBSERVATION:
        observer = remembered(session, ("observer", actor.id, unit.id, content.activity_date, candidate.id),
                              lambda: people.observer(actor.user, people.credentials(session, [actor.id])[actor.id],
                                                      unit, content.activity_date, candidate))
        rules.check_observer(strategy, unit.code, observer)
    if method == Method.WITNESS_TESTIMONY and submitting:
        rules.check_witness_details(content.model_dump(), signed=signed_by_witness)
    if method == Method.WORK_PRODUCT:
        _check_work_product(content)
    if submitting and not content.criteria:
        raise InvalidInput("Map the evidence to at least one assessment criterion before submitting it.",
                           field="criteria")


def _check_work_product(content: ContentIn) -> None:
    if content.seen_in_place and not (content.location or "").strip():
        raise InvalidInput("Say where the original document is kept, so it can be seen in place.", field="location")
    if not content.seen_in_place and not content.attachments:
        raise InvalidInput("Attach the work product, or record it as seen in place if it is confidential.",
                           field="attachments")


def _resolve(session: Session, unit: Unit, content: ContentIn, user: User | None) -> _Resolved:
    """Turn criterion codes, range item keys and file hashes into rows, refusing unknown ones."""
    codes = [c.code for c in content.criteria]
    if len(set(codes)) != len(codes):
        raise InvalidInput("Each criterion can be mapped only once; put everything about it in one note.",
                           field="criteria")
    current = remembered(session, ("criteria", unit.id), lambda: {c.code: c for c in session.exec(
        select(Criterion).where(Criterion.unit_id == unit.id, col(Criterion.retired).is_(False)))})
    found = {code: current[code] for code in codes if code in current}
    unknown = [c for c in codes if c not in found]
    if unknown:
        raise InvalidInput(f"Unit {unit.code} has no criterion {', '.join(unknown)}.", field="criteria")
    items = _range_items(session, found, content.range_items)
    _check_blobs(session, content.attachments, user)
    return _Resolved([(found[c.code], c.note) for c in content.criteria], items, content.attachments)


def _range_items(session: Session, criteria: dict[str, Criterion], keys: list[str]) -> list[RangeItem]:
    if not keys:
        return []
    ids = [c.id for c in criteria.values()]
    rows = {r.key: r for r in session.exec(select(RangeItem).where(
        col(RangeItem.criterion_id).in_(ids), col(RangeItem.key).in_(keys)))} if ids else {}
    unknown = [k for k in dict.fromkeys(keys) if k not in rows]
    if unknown:
        raise InvalidInput("These range items do not belong to the mapped criteria: " + ", ".join(unknown) + ".",
                           field="range_items")
    return [rows[k] for k in dict.fromkeys(keys)]


def _check_blobs(session: Session, attachments: list[AttachmentIn], user: User | None) -> None:
    hashes = {a.sha256 for a in attachments}
    if len(hashes) != len(attachments):
        raise InvalidInput("The same file is attached twice.", field="attachments")
    if unproven(session, user, hashes):
        raise InvalidInput("An attached file has not been uploaded yet; upload it first.", field="attachments")


def attached_to(session: Session, sha256: str) -> set[uuid.UUID]:
    """Return the evidence a stored file is attached to, as a file or as a drawn signature."""
    attached = session.exec(select(EvidenceVersion.evidence_id).join(Attachment).where(Attachment.sha256 == sha256))
    signed = session.exec(select(EvidenceVersion.evidence_id).join(Signature).where(Signature.image_sha256 == sha256))
    return set(attached) | set(signed)


def unproven(session: Session, user: User | None, hashes: set[str]) -> set[str]:
    """Return the files a person may not attach: not stored, or stored and attached where they cannot read it
    without their having sent its bytes themselves (the same answer for both, so a hash reveals nothing)."""
    if not hashes:
        return set()
    stored = set(session.exec(select(Blob.sha256).where(col(Blob.sha256).in_(hashes))))
    held = set(session.exec(select(BlobHolder.sha256).where(
        col(BlobHolder.sha256).in_(stored), BlobHolder.user_id == user.id))) if user is not None and stored else set()
    return (hashes - stored) | {h for h in stored - held if not may_attach(session, user, h)}


def may_attach(session: Session, user: User | None, sha256: str) -> bool:
    """Say whether a person may attach a stored file by its hash: one attached nowhere yet, or one they may read.

    Without this, knowing the hash of someone else's file would be enough to attach it to your own evidence and
    then download it. A photo's smaller copy counts as the photo.
    """
    original = session.exec(select(BlobRendition.original_sha256).where(BlobRendition.sha256 == sha256)).first()
    evidence_ids = attached_to(session, original or sha256)
    if not evidence_ids:
        return True
    if user is None:
        return False
    for evidence_id in evidence_ids:
        try:
            access.evidence_for(session, user, evidence_id)
            return True
        except Refusal:
            continue
    return False


def version_content(candidate: Candidate, unit: Unit, method: str, content: ContentIn) -> dict:
    """Return exactly what a signature on this version vouches for."""
    data = {name: getattr(content, name) for name in CONTENT_FIELDS}
    data.update(
        candidate=candidate.id, unit=unit.code, method=method,
        criteria=sorted([c.code, c.note] for c in content.criteria),
        range_items=sorted(set(content.range_items)),
        attachments=sorted([a.sha256, a.filename] for a in content.attachments),
    )
    return data


# --- Writing -----------------------------------------------------------------------------------


def _version_row(evidence_id: uuid.UUID, number: int, author: User, content: ContentIn, digest: str,
                 replaces: uuid.UUID | None = None) -> dict[str, Any]:
    """Return the columns of a new version of a piece of evidence."""
    return {"id": new_id(), "evidence_id": evidence_id, "number": number, "author_id": author.id,
            "replaces_id": replaces, "content_hash": digest, "captured_at": content.captured_at,
            "created_at": utcnow(), "submitted_at": None, **{name: getattr(content, name) for name in CONTENT_FIELDS}}


def _link_rows(version_id: uuid.UUID, resolved: _Resolved) -> list[tuple[type[SQLModel], dict[str, Any]]]:
    """Return the rows that map a version to its criteria, range items and files."""
    rows: list[tuple[type[SQLModel], dict[str, Any]]] = [
        (EvidenceCriterion, {"version_id": version_id, "criterion_id": criterion.id, "note": note})
        for criterion, note in resolved.criteria]
    rows += [(EvidenceRangeItem, {"version_id": version_id, "range_item_id": item.id})
             for item in resolved.range_items]
    rows += [(Attachment, {"id": new_id(), "version_id": version_id, "sha256": a.sha256, "filename": a.filename,
                           "position": position}) for position, a in enumerate(resolved.attachments)]
    return rows


def _write_version(session: Session, evidence: Evidence, number: int, author: User, content: ContentIn,
                   resolved: _Resolved, digest: str, replaces: uuid.UUID | None = None) -> EvidenceVersion:
    version = EvidenceVersion(**_version_row(evidence.id, number, author, content, digest, replaces))
    session.add(version)
    session.flush()
    _write_links(session, version, resolved)
    return version


def _write_links(session: Session, version: EvidenceVersion, resolved: _Resolved) -> None:
    session.add_all([model(**row) for model, row in _link_rows(version.id, resolved)])
    session.flush()


@dataclass
class Capture:
    """A new piece of evidence checked against every rule, as the rows it writes and the changes it audits."""

    evidence: dict[str, Any]
    version: dict[str, Any]
    rows: list[tuple[type[SQLModel], dict[str, Any]]]
    changes: list[tuple[str, dict[str, Any]]]

    @property
    def id(self) -> uuid.UUID:
        """Return the new evidence's id."""
        return self.evidence["id"]

    @property
    def candidate_id(self) -> uuid.UUID:
        """Return the candidate the evidence belongs to."""
        return self.evidence["candidate_id"]


def check_capture(session: Session, actor: Actor, data: EvidenceIn | dict, *, new: bool = False) -> Capture | Evidence:
    """Check a capture against every rule and return what it would write, or the evidence already captured with
    this id and content (``new`` says the caller knows the id is unused)."""
    data = validate(EvidenceIn, data)
    candidate = people.get_candidate(session, data.candidate_id)
    unit = unit_for(session, candidate, data.unit)
    _check_may_capture(session, actor, candidate, data.method)
    digest = content_hash(version_content(candidate, unit, data.method, data))
    # A replay of what was already captured gets the same answer, even if the rules have moved on since.
    if not new and data.id is not None and (same := _existing(session, data.id, digest)) is not None:
        return same
    witness_signed = any(s.kind == SignatureKind.WITNESS for s in data.signatures)
    _check_rules(session, actor, candidate, unit, data.method, data, witness_signed, data.submit)
    resolved = _resolve(session, unit, data, actor.user)
    signers = _check_signatures(session, actor, candidate, data.method, data.witness_name, data.signatures)
    status = Status.SUBMITTED if data.submit else Status.DRAFT
    evidence_id = data.id or new_id()
    version = _version_row(evidence_id, 1, actor.user, data, digest)
    version["submitted_at"] = version["created_at"] if data.submit else None
    evidence = {"id": evidence_id, "candidate_id": candidate.id, "unit_id": unit.id, "method": str(data.method),
                "created_by_id": actor.id, "device_id": actor.device_id, "status": str(status),
                "created_at": version["created_at"], "current_version": 1}
    capture = Capture(evidence, version, _link_rows(version["id"], resolved), [(
        "evidence.captured", {"method": data.method, "status": status, "version": str(version["id"]),
                              "content_hash": digest, "candidate": str(candidate.id)})])
    _plan_signatures(actor, signers, capture)
    return capture


def _plan_signatures(actor: Actor, signers: list[tuple[SignatureIn, str, uuid.UUID | None]],
                     capture: Capture) -> None:
    """Add the checked signatures made with a capture to its rows, once each per kind and signer."""
    version_id, digest = capture.version["id"], capture.version["content_hash"]
    signed = set()
    for sig, name, signer_id in signers:
        if (sig.kind, name) in signed:
            continue
        signed.add((sig.kind, name))
        capture.rows.append((Signature, _signature_row(actor, version_id, digest, sig, name, signer_id)))
        capture.changes.append(("evidence.signed", _signed(version_id, digest, sig, name)))


def capture(session: Session, actor: Actor, data: EvidenceIn | dict) -> Evidence:
    """Record a new piece of evidence, with its signatures, as a draft or submitted."""
    checked = check_capture(session, actor, data)
    if isinstance(checked, Evidence):
        return checked
    if not insert_new(session, Evidence, checked.evidence):
        # The same form sent twice at once (or a device's retry): the other request stored it first. The same
        # content gets the same answer; other content under the same id is a conflict.
        return _existing(session, checked.id, checked.version["content_hash"])
    evidence = session.get(Evidence, checked.id)
    session.add(EvidenceVersion(**checked.version))
    session.flush()
    session.add_all([model(**row) for model, row in checked.rows])
    session.flush()
    for action, details in checked.changes:
        record(session, actor, action, evidence, **details)
    return evidence


def write_captures(session: Session, actor: Actor, captures: list[Capture]) -> None:
    """Write checked captures in bulk: one insert per table and one run of the audit chain, in capture order."""
    tables: dict[Any, list[dict[str, Any]]] = {Evidence: [c.evidence for c in captures],
                                               EvidenceVersion: [c.version for c in captures]}
    for capture in captures:
        for model, row in capture.rows:
            tables.setdefault(model, []).append(row)
    for model, rows in tables.items():
        insert_many(session, model.__table__, rows)
    record_many(session, actor, [Change(action, "evidence", c.id, c.candidate_id, details)
                                 for c in captures for action, details in c.changes])


def _existing(session: Session, evidence_id: uuid.UUID, digest: str) -> Evidence | None:
    """Return evidence already captured with this id and content; refuse the same id with other content."""
    evidence = session.get(Evidence, evidence_id)
    if evidence is None:
        return None
    first = session.exec(select(EvidenceVersion).where(
        EvidenceVersion.evidence_id == evidence_id, EvidenceVersion.number == 1)).one()
    if first.content_hash == digest:
        return evidence
    raise Refusal("conflict", "Evidence with this id already exists with different content; it has not been "
                              "overwritten. Save your changes as a new version.")


def _check_author(actor: Actor, evidence: Evidence, candidate: Candidate) -> None:
    if actor.id not in (evidence.created_by_id, candidate.user_id if _by_candidate(evidence, candidate) else None):
        raise NotPermitted("Only the person who recorded this evidence can change it.")


def _by_candidate(evidence: Evidence, candidate: Candidate) -> bool:
    return evidence.created_by_id == candidate.user_id


def update_draft(session: Session, actor: Actor, evidence_id: uuid.UUID | str, data: ContentIn | dict) -> Evidence:
    """Change a draft in place; signed content refuses, and must be revised as a new version."""
    data = validate(ContentIn, data)
    turn(session)
    evidence = get(session, evidence_id)
    candidate = session.get(Candidate, evidence.candidate_id)
    unit = session.get(Unit, evidence.unit_id)
    _check_author(actor, evidence, candidate)
    if evidence.status != Status.DRAFT:
        raise InvalidInput("Submitted evidence cannot be edited; save your changes as a new version.",
                           field="status")
    version = current_version(session, evidence)
    digest = content_hash(version_content(candidate, unit, evidence.method, data))
    rules.check_signed_content_unchanged([s.content_hash for s in version.signatures], digest)
    _check_rules(session, actor, candidate, unit, evidence.method, data, False, False)
    resolved = _resolve(session, unit, data, actor.user)
    for model in (EvidenceCriterion, EvidenceRangeItem, Attachment):
        session.exec(delete(model).where(model.version_id == version.id))
    for name in CONTENT_FIELDS:
        setattr(version, name, getattr(data, name))
    version.content_hash, version.captured_at = digest, data.captured_at
    session.add(version)
    _write_links(session, version, resolved)
    record(session, actor, "evidence.edited", evidence, version=str(version.id), content_hash=digest)
    return evidence


def revise(session: Session, actor: Actor, evidence_id: uuid.UUID | str, data: ContentIn | dict,
           *, base_version: int | None = None, base_hash: str | None = None,
           signatures: list[SignatureIn] | None = None) -> Evidence:
    """Save changed content as a new version naming the one it replaces; the old one stays readable.

    The version changed is named by its content hash where known (a number can repeat on two devices, G4), or by
    its number; a change made on a version that has since been replaced is refused as out of date."""
    data = validate(ContentIn, data)
    turn(session)
    evidence = get(session, evidence_id)
    candidate = session.get(Candidate, evidence.candidate_id)
    unit = session.get(Unit, evidence.unit_id)
    _check_author(actor, evidence, candidate)
    if evidence.status not in REVISABLE:
        raise InvalidInput("Accepted evidence cannot be changed. Ask your assessor if something is wrong.",
                           field="status")
    old = current_version(session, evidence)
    if (old.content_hash != base_hash) if base_hash else (base_version is not None and base_version != old.number):
        seen = f"version {base_version}" if base_version else "the version you changed"
        raise Refusal("out_of_date", f"This evidence has changed since {seen}: it is now at version {old.number}. "
                                     "Review the newer version before changing it.")
    submitting = evidence.status != Status.DRAFT
    sigs = signatures or []
    _check_rules(session, actor, candidate, unit, evidence.method, data,
                 any(s.kind == SignatureKind.WITNESS for s in sigs), submitting)
    resolved = _resolve(session, unit, data, actor.user)
    digest = content_hash(version_content(candidate, unit, evidence.method, data))
    _check_signatures(session, actor, candidate, evidence.method, data.witness_name, sigs)
    version = _write_version(session, evidence, old.number + 1, actor.user, data, resolved, digest, old.id)
    evidence.current_version = version.number
    if submitting:
        evidence.status = Status.SUBMITTED if evidence.status == Status.SUBMITTED else Status.RESUBMITTED
        version.submitted_at = version.created_at
    session.add(evidence)
    record(session, actor, "evidence.revised", evidence, version=str(version.id), number=version.number,
           replaces=str(old.id), status=evidence.status, content_hash=digest)
    for sig in sigs:
        _sign(session, actor, evidence, version, candidate, sig)
    return evidence


def submit(session: Session, actor: Actor, evidence_id: uuid.UUID | str) -> Evidence:
    """Submit a draft for assessment, re-checking every rule on its content."""
    turn(session)
    evidence = get(session, evidence_id)
    candidate = session.get(Candidate, evidence.candidate_id)
    unit = session.get(Unit, evidence.unit_id)
    _check_author(actor, evidence, candidate)
    if evidence.status != Status.DRAFT:
        raise InvalidInput("This evidence has already been submitted.", field="status")
    version = current_version(session, evidence)
    content = content_of(session, version)
    _check_rules(session, actor, candidate, unit, evidence.method, content,
                 any(s.kind == SignatureKind.WITNESS for s in version.signatures), True)
    evidence.status, version.submitted_at = Status.SUBMITTED, utcnow()
    session.add_all([evidence, version])
    record(session, actor, "evidence.submitted", evidence, version=str(version.id))
    return evidence


def content_of(session: Session, version: EvidenceVersion) -> ContentIn:
    """Read a stored version back as content input."""
    links = session.exec(select(Criterion.code, EvidenceCriterion.note).join(Criterion).where(
        EvidenceCriterion.version_id == version.id)).all()
    keys = session.exec(select(RangeItem.key).join(EvidenceRangeItem).where(
        EvidenceRangeItem.version_id == version.id)).all()
    return ContentIn.model_construct(
        **{name: getattr(version, name) for name in CONTENT_FIELDS},
        criteria=[CriterionLink(code=c, note=n) for c, n in links], range_items=list(keys),
        attachments=[AttachmentIn(sha256=a.sha256, filename=a.filename) for a in version.attachments],
        captured_at=version.captured_at,
    )


# --- Signatures ----------------------------------------------------------------------------------


def sign(session: Session, actor: Actor, evidence_id: uuid.UUID | str, data: SignatureIn | dict) -> Signature:
    """Sign the current version of a piece of evidence, binding the signature to its content hash."""
    data = validate(SignatureIn, data)
    turn(session)
    evidence = get(session, evidence_id)
    candidate = session.get(Candidate, evidence.candidate_id)
    rules.check_unit_unlocked(locked_on(session, candidate.id, evidence.unit_id),
                              session.get(Unit, evidence.unit_id).code)
    return _sign(session, actor, evidence, current_version(session, evidence), candidate, data)


def _check_signatures(session: Session, actor: Actor, candidate: Candidate, method: str, witness_name: str | None,
                      signatures: list[SignatureIn]) -> list[tuple[SignatureIn, str, uuid.UUID | None]]:
    """Refuse a wrong signature on content about to be written by the actor, before anything is written; return
    each signature with its signer's name and id."""
    evidence, version = SimpleNamespace(method=method), SimpleNamespace(author_id=actor.id, witness_name=witness_name)
    signers = []
    for data in signatures:
        signers.append((data, *_signer(session, actor, evidence, version, candidate, data)))
        if data.image_sha256:
            _check_blobs(session, [AttachmentIn(sha256=data.image_sha256, filename="signature.png")], actor.user)
    return signers


def _sign(session: Session, actor: Actor, evidence: Evidence, version: EvidenceVersion, candidate: Candidate,
          data: SignatureIn) -> Signature:
    name, signer_id = _signer(session, actor, evidence, version, candidate, data)
    existing = session.exec(select(Signature).where(Signature.version_id == version.id, Signature.kind == data.kind,
                                                    Signature.signer_name == name)).first()
    if existing is not None:
        return existing
    if data.image_sha256:
        _check_blobs(session, [AttachmentIn(sha256=data.image_sha256, filename="signature.png")], actor.user)
    sig = Signature(**_signature_row(actor, version.id, version.content_hash, data, name, signer_id))
    session.add(sig)
    session.flush()
    session.refresh(version, ["signatures"])
    record(session, actor, "evidence.signed", evidence, **_signed(version.id, version.content_hash, data, name))
    return sig


def _signature_row(actor: Actor, version_id: uuid.UUID, content_hash: str, data: SignatureIn, name: str,
                   signer_id: uuid.UUID | None) -> dict[str, Any]:
    """Return the columns of a signature on a version, bound to the hash of its content."""
    return {"id": new_id(), "version_id": version_id, "kind": str(data.kind), "signer_id": signer_id,
            "signer_name": name, "statement": STATEMENTS[data.kind], "content_hash": content_hash,
            "image_sha256": data.image_sha256, "signed_at": utcnow(), "device_id": actor.device_id}


def _signed(version_id: uuid.UUID, content_hash: str, data: SignatureIn, name: str) -> dict[str, Any]:
    """Return what the audit log says of a signature."""
    return {"kind": data.kind.value, "signer": name, "version": str(version_id), "content_hash": content_hash}


def _signer(session: Session, actor: Actor, evidence: Evidence, version: EvidenceVersion, candidate: Candidate,
            data: SignatureIn) -> tuple[str, uuid.UUID | None]:
    """Work out who is signing, refusing a signature by the wrong person or on the wrong kind of evidence."""
    candidate_user = session.get(User, candidate.user_id)
    kind = data.kind
    if kind == SignatureKind.AUTHENTICITY:
        if actor.id != candidate.user_id:
            raise NotPermitted("Only the candidate can declare that evidence is their own work.")
        return candidate_user.name, candidate_user.id
    if kind == SignatureKind.COUNTERSIGNATURE:
        if evidence.method != Method.OBSERVATION:
            raise InvalidInput("Only an observation is countersigned by the candidate.", field="kind")
        if actor.id not in (candidate.user_id, version.author_id):
            raise NotPermitted("The candidate countersigns an observation on their own or the observer's device.")
        return candidate_user.name, candidate_user.id
    if kind == SignatureKind.WITNESS:
        if evidence.method != Method.WITNESS_TESTIMONY:
            raise InvalidInput("Only witness testimony carries a witness signature.", field="kind")
        if actor.id != version.author_id:
            raise NotPermitted("The witness signs on the device where their testimony was recorded.")
        return (version.witness_name or data.signer_name or "").strip() or "witness", None
    if actor.id != version.author_id or evidence.method != Method.OBSERVATION:
        raise NotPermitted("Only the observer signs an observation as observer.")
    return actor.name, actor.id


# --- Review ----------------------------------------------------------------------------------------


def review(session: Session, actor: Actor, evidence_id: uuid.UUID | str, outcome: str, feedback: str) -> EvidenceReview:
    """Accept or refer submitted evidence; a referral needs developmental feedback. Each version is decided once:
    the same decision sent again is answered as the first was, any other is told who decided it first."""
    feedback = text(feedback, "feedback", max_length=FEEDBACK_LIMIT, label="feedback")
    turn(session)
    evidence = get(session, evidence_id)
    candidate = session.get(Candidate, evidence.candidate_id)
    unit = session.get(Unit, evidence.unit_id)
    if not people.assigned(session, candidate, actor.id, Role.ASSESSOR):
        raise NotPermitted("Only the candidate's assessor can accept or refer their evidence.")
    people.assessor_check(session, actor, unit, "accept or refer evidence")
    rules.check_unit_unlocked(locked_on(session, candidate.id, unit.id), unit.code)
    if outcome not in (Status.ACCEPTED, Status.REFERRED):
        raise InvalidInput("Choose to accept or refer the evidence.", field="outcome")
    version = current_version(session, evidence)
    if evidence.status in (Status.ACCEPTED, Status.REFERRED):
        return _decided(session, actor, version, outcome, feedback)
    if evidence.status not in (Status.SUBMITTED, Status.RESUBMITTED):
        raise InvalidInput(f"This evidence is {evidence.status}, not waiting for a decision.", field="status")
    if outcome == Status.REFERRED and len(feedback) < 10:
        raise InvalidInput("Give developmental feedback when referring evidence: say what to add or change.",
                           field="feedback")
    row = EvidenceReview(evidence_id=evidence.id, version_id=version.id, reviewer_id=actor.id, outcome=outcome,
                         feedback=feedback)
    evidence.status = outcome
    session.add_all([row, evidence])
    session.flush()
    record(session, actor, f"evidence.{outcome}", evidence, version=str(version.id), feedback=feedback)
    return row


FEEDBACK_LIMIT = 5000  # the feedback on one decision; the form says so


def _decided(session: Session, actor: Actor, version: EvidenceVersion, outcome: str, feedback: str) -> EvidenceReview:
    """Return the decision already made on this version if it is this one again; otherwise say who made it."""
    found = session.exec(select(EvidenceReview, User.name).join(User, User.id == EvidenceReview.reviewer_id)
                         .where(EvidenceReview.version_id == version.id)).first()
    if found is None:  # decided elsewhere (a centre this portfolio came from) with no review of this version here
        raise InvalidInput("This evidence has already been decided, so it is not waiting for a decision.",
                           field="status")
    row, name = found
    if (row.reviewer_id, row.outcome, row.feedback) == (actor.id, outcome, feedback):
        return row
    raise AlreadyDone(f"This evidence was already decided by {name}: {row.outcome} on "
                      f"{clock.day_of(row.created_at):%-d %B %Y}. Their decision stands; reload the page to see it.",
                      field="outcome")
