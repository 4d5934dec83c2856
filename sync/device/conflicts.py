"""Conflicts on a field device: this device's change beside the centre's newer version, settled by a person (G13).

When the centre keeps a change from this device as a conflict (it was made on a version the centre had already
replaced), the next pull keeps the centre's copy of that evidence beside this device's own (``ConflictCopy``).
The assessor then decides:

- keep mine: this device's content becomes a new version on top of the centre's;
- take the centre's: this device's unsent changes to the evidence are set aside, the centre's version is kept;
- merge: content the assessor edits, from both, becomes a new version on top of the centre's.

Each way, the centre's copy replaces this device's rows first, so that a new version is made, checked and queued
by the evidence service as any other change, naming the centre's version as the one it replaces. A
``conflict.resolve`` item then tells the centre the conflict is settled, and by which choice. Framework-free.
"""
import uuid
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, select

from tracker.audit import Actor, record
from tracker.errors import NotFound, Refusal
from tracker.models import ConflictCopy, Criterion, Evidence, OutboxItem, Signature, new_id
from tracker.services import evidence as service
from tracker.services.conflicts import plain_fields
from tracker.services.evidence import ContentIn, SignatureIn

from . import outbox
from .client import EVIDENCE_CHILDREN, _convert, _model, _remove_evidence, _upsert_all

CHOICES = ("device", "centre", "merged")


@dataclass
class Conflict:
    """One piece of evidence whose change the centre kept beside a newer version of its own."""

    item: OutboxItem  # the change the centre kept as a conflict
    evidence: Evidence
    mine: ContentIn  # this device's newest version
    centre: dict[str, Any] | None  # the centre's version, as pulled (None until the next pull brings it)
    centre_version: int | None


def open_conflicts(session: Session) -> list[Conflict]:
    """Return every conflict this device holds, oldest first."""
    items = session.exec(select(OutboxItem).where(OutboxItem.state == outbox.CONFLICT,
                                                  col(OutboxItem.evidence_id).is_not(None))
                         .order_by(OutboxItem.seq)).all()
    seen: dict[uuid.UUID, Conflict] = {}
    for item in items:
        if item.evidence_id not in seen:
            seen[item.evidence_id] = _conflict(session, item)
    return list(seen.values())


def conflict_for(session: Session, evidence_id: uuid.UUID | str) -> Conflict:
    """Return the conflict this device holds on a piece of evidence, or refuse."""
    try:
        key = evidence_id if isinstance(evidence_id, uuid.UUID) else uuid.UUID(str(evidence_id))
    except ValueError:
        raise NotFound("conflict") from None
    item = session.exec(select(OutboxItem).where(OutboxItem.state == outbox.CONFLICT, OutboxItem.evidence_id == key)
                        .order_by(OutboxItem.seq)).first()
    if item is None:
        raise NotFound("conflict")
    return _conflict(session, item)


def _conflict(session: Session, item: OutboxItem) -> Conflict:
    evidence = service.get(session, item.evidence_id)
    mine = service.content_of(session, service.current_version(session, evidence))
    copy = session.get(ConflictCopy, evidence.id)
    centre = None
    if copy is not None:
        centre = next((v for v in copy.rows.get("evidenceversion", []) if v["number"] == copy.centre_version), None)
    return Conflict(item, evidence, mine, centre, copy.centre_version if copy else None)


def resolve(session: Session, actor: Actor, evidence_id: uuid.UUID | str, choice: str,
            content: ContentIn | dict | None = None) -> Evidence:
    """Settle a conflict by the assessor's choice; the outcome is queued for the centre like any change."""
    if choice not in CHOICES:
        raise Refusal("invalid_input", "Choose to keep your version, take the centre's, or merge the two.",
                      field="choice")
    conflict = conflict_for(session, evidence_id)
    copy = session.get(ConflictCopy, conflict.evidence.id)
    if copy is None:
        raise Refusal("centre_copy_missing", "The centre's version of this evidence has not reached this device "
                                             "yet. Sync, then decide.")
    mine, signatures = conflict.mine, _signatures_of(session, conflict.evidence)
    _set_aside(session, actor, conflict)
    _take_copy(session, copy)
    if choice == "device":
        service.revise(session, actor, conflict.evidence.id, mine, base_hash=copy.centre_hash,
                       signatures=signatures)
    elif choice == "merged":
        service.revise(session, actor, conflict.evidence.id, content, base_hash=copy.centre_hash)
    session.delete(copy)
    outbox.queue_now(session)  # the new version goes to the centre before the word that settles the conflict
    _queue_resolution(session, conflict, choice)
    return service.get(session, conflict.evidence.id)


def _signatures_of(session: Session, evidence: Evidence) -> list[SignatureIn]:
    """Return the signatures on this device's newest version: they vouch for exactly its content, kept whole."""
    version = service.current_version(session, evidence)
    return [SignatureIn(kind=s.kind, signer_name=s.signer_name, image_sha256=s.image_sha256)
            for s in session.exec(select(Signature).where(Signature.version_id == version.id))]


def _set_aside(session: Session, actor: Actor, conflict: Conflict) -> None:
    """Mark the conflict and every change queued after it on the evidence as settled by the resolution."""
    for item in session.exec(select(OutboxItem).where(OutboxItem.evidence_id == conflict.evidence.id,
                                                      col(OutboxItem.state).in_(outbox.UNSENT),
                                                      OutboxItem.seq >= conflict.item.seq)):
        record(session, actor, "sync.set_aside", item, item=str(item.item_id), kind=item.kind, seq=item.seq,
               payload=item.payload)
        item.state, item.code = outbox.DISCARDED, "resolved"
        item.message = "Settled when the conflict on this evidence was resolved."
        session.add(item)
    session.flush()


def _take_copy(session: Session, copy: ConflictCopy) -> None:
    """Replace this device's rows of the evidence with the centre's copy."""
    _remove_evidence(session, [copy.evidence_id])
    for name in ("evidence", "evidenceversion", *EVIDENCE_CHILDREN):
        rows = copy.rows.get(name) or []
        if name == "evidenceversion":  # a version names the one it replaces, so earlier ones go in first
            rows = sorted(rows, key=lambda r: r["number"])
        table = _model(name).__table__
        _upsert_all(session, table, [_convert(table, row) for row in rows])
    session.expire_all()


def _queue_resolution(session: Session, conflict: Conflict, choice: str) -> None:
    """Queue the message that tells the centre how the assessor settled the conflict."""
    session.add(OutboxItem(item_id=new_id(), seq=outbox.next_seq(session), kind="conflict.resolve",
                           payload={"item_id": str(conflict.item.item_id), "choice": choice},
                           evidence_id=conflict.evidence.id))
    session.flush()


def sides(session: Session, conflict: Conflict) -> tuple[dict[str, Any], dict[str, Any]]:
    """Return the centre's version and this device's, field by field, as a person compares them."""
    mine = plain_fields(conflict.mine.model_dump(mode="json"))
    copy = session.get(ConflictCopy, conflict.evidence.id)
    if copy is None or conflict.centre is None:
        return {}, mine
    codes = dict(session.exec(select(Criterion.id, Criterion.code)).all())
    links = [r for r in copy.rows.get("evidencecriterion", []) if str(r["version_id"]) == str(conflict.centre["id"])]
    centre = plain_fields(conflict.centre | {"criteria": sorted(
        ({"code": codes.get(r["criterion_id"], "?"), "note": r.get("note")} for r in links),
        key=lambda c: c["code"])})
    return centre, mine
