"""A field device's outbox: every evidence change queued for the centre in the same local transaction (G19).

The evidence services write an audit entry for every change. On a field device, a hook on the database session
notes those entries as they are flushed and, just before the transaction commits, turns them into outbox items
built from the stored rows, so the item and the change commit (or vanish) together. Framework-free.
"""
import uuid
import weakref
from typing import Any

from sqlalchemy import bindparam, case, event, func, update
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from tracker import clock
from tracker.errors import Refusal
from tracker.models import (
    AuditEntry,
    Evidence,
    EvidenceVersion,
    OutboxItem,
    Signature,
    Status,
    Unit,
    new_id,
    utcnow,
)

PENDING, ATTEMPTED, HELD, PARKED, SENT, DISCARDED = "pending", "attempted", "held", "parked", "sent", "discarded"
CONFLICT = "conflict"  # the centre keeps this change beside a newer version: a person decides (G13)
UNSENT = (PENDING, ATTEMPTED, HELD, PARKED, CONFLICT)
SENDABLE = (PENDING, ATTEMPTED, HELD)
SETTLED_BY_PERSON = (PARKED, CONFLICT)  # stay until the assessor discards or resolves them
QUEUED = ("evidence.captured", "evidence.revised", "evidence.signed", "evidence.submitted", "evidence.edited")
NOT_SYNCED = ("evidence.accepted", "evidence.referred")
_KEY = "tracker.outbox.entries"
_engines: "weakref.WeakSet[Engine]" = weakref.WeakSet()


def install(engine: Engine) -> None:
    """Queue evidence changes made through sessions on this engine (a field device's database)."""
    _engines.add(engine)


def _watched(session: Session) -> bool:
    return session.bind is not None and session.bind in _engines


@event.listens_for(Session, "after_flush")
def _note(session: Session, _context: Any) -> None:
    """Remember the evidence audit entries this flush wrote."""
    if not _watched(session):
        return
    for obj in session.new:
        if isinstance(obj, AuditEntry) and obj.action.startswith("evidence."):
            session.info.setdefault(_KEY, []).append(obj)


@event.listens_for(Session, "after_rollback")
def _forget(session: Session) -> None:
    session.info.pop(_KEY, None)


@event.listens_for(Session, "before_commit")
def _queue(session: Session) -> None:
    """Turn this transaction's evidence changes into outbox items, in the same transaction."""
    if _watched(session):
        queue_now(session)


def queue_now(session: Session) -> None:
    """Queue the evidence changes made so far in this transaction, so that what is queued next follows them."""
    session.flush()
    entries = [e for e in session.info.pop(_KEY, []) if sa_inspect(e).persistent]
    if entries:
        enqueue_entries(session, entries)
        session.flush()


def enqueue_entries(session: Session, entries: list[AuditEntry]) -> list[OutboxItem]:
    """Queue items for a transaction's evidence audit entries, in the order they were written."""
    created = {uuid.UUID(e.entity_id) for e in entries if e.action == "evidence.captured"}
    revised = {(uuid.UUID(e.entity_id), e.details.get("version")) for e in entries if e.action == "evidence.revised"}
    queued = []
    for entry in sorted(entries, key=lambda e: e.seq):
        evidence_id = uuid.UUID(entry.entity_id)
        if entry.action in NOT_SYNCED:
            raise Refusal("field_not_synced", "Accepting or referring evidence is done on the centre's tracker, "
                                              "not on a field device.")
        if entry.action == "evidence.captured":
            queued.append(_add(session, "evidence.capture", evidence_id, capture_payload(session, evidence_id)))
        elif entry.action == "evidence.revised":
            version = session.get(EvidenceVersion, uuid.UUID(entry.details["version"]))
            queued.append(_add(session, "evidence.revise", evidence_id, revise_payload(session, version)))
        elif entry.action == "evidence.signed":
            if evidence_id in created or (evidence_id, entry.details.get("version")) in revised:
                continue  # carried by the capture or revision it was made with
            queued.append(_add(session, "evidence.sign", evidence_id, sign_payload(session, entry)))
        elif entry.action == "evidence.submitted":
            version = session.get(EvidenceVersion, uuid.UUID(entry.details["version"]))
            queued.append(_add(session, "evidence.submit", evidence_id, {
                "evidence_id": str(evidence_id), "version": version.number, "content_hash": version.content_hash}))
        elif entry.action == "evidence.edited" and evidence_id not in created:
            _edit_draft(session, evidence_id)
    return queued


def _add(session: Session, kind: str, evidence_id: uuid.UUID, payload: dict[str, Any]) -> OutboxItem:
    item = OutboxItem(item_id=new_id(), seq=next_seq(session), kind=kind, payload=payload, evidence_id=evidence_id)
    session.add(item)
    session.flush()
    return item


def next_seq(session: Session) -> int:
    """Return the seq the next queued item takes: one past the highest ever queued (sent items are kept)."""
    return (session.exec(select(func.max(OutboxItem.seq))).one() or 0) + 1


def _edit_draft(session: Session, evidence_id: uuid.UUID) -> None:
    """Fold an edit of a draft into its capture if the capture has never been tried; otherwise refuse."""
    capture = session.exec(select(OutboxItem).where(OutboxItem.evidence_id == evidence_id,
                                                    OutboxItem.kind == "evidence.capture")).first()
    later = session.exec(select(OutboxItem).where(OutboxItem.evidence_id == evidence_id,
                                                  OutboxItem.kind != "evidence.capture")).first()
    if capture is None or capture.state != PENDING or capture.attempts or later is not None:
        raise Refusal("already_sent", "This draft has already been sent to the centre, so it cannot be edited in "
                                      "place; save your changes as a new version.")
    capture.payload = capture_payload(session, evidence_id)
    session.add(capture)


# --- Payloads, built from the stored rows -------------------------------------------------------------


def _content(session: Session, version: EvidenceVersion) -> dict[str, Any]:
    from tracker.services.evidence import content_of

    content = content_of(session, version).model_dump(mode="json")
    # When the version was made by this device's clock: kept by the centre as metadata, never used to order (G24).
    content["captured_at"] = content.get("captured_at") or clock.aware(version.created_at).isoformat()
    return content


def _signatures(version: EvidenceVersion) -> list[dict[str, Any]]:
    return [{"kind": s.kind, "signer_name": s.signer_name, **({"image_sha256": s.image_sha256}
                                                               if s.image_sha256 else {})}
            for s in version.signatures]


def capture_payload(session: Session, evidence_id: uuid.UUID) -> dict[str, Any]:
    """Return the evidence.capture payload for a piece of evidence's first version, as stored."""
    evidence = session.get(Evidence, evidence_id)
    first = session.exec(select(EvidenceVersion).where(EvidenceVersion.evidence_id == evidence_id,
                                                        EvidenceVersion.number == 1)).one()
    submitted = first.submitted_at is not None or (evidence.current_version == 1 and evidence.status != Status.DRAFT)
    return {"id": str(evidence.id), "candidate_id": str(evidence.candidate_id),
            "unit": session.get(Unit, evidence.unit_id).code, "method": evidence.method,
            "submit": submitted, "signatures": _signatures(first), **_content(session, first)}


def revise_payload(session: Session, version: EvidenceVersion) -> dict[str, Any]:
    """Return the evidence.revise payload for a stored version, naming the version it replaces by its hash (G4)."""
    base = session.get(EvidenceVersion, version.replaces_id) if version.replaces_id else None
    return {"evidence_id": str(version.evidence_id), "base_version": version.number - 1,
            "base_hash": base.content_hash if base else None, "content": _content(session, version),
            "signatures": _signatures(version)}


def sign_payload(session: Session, entry: AuditEntry) -> dict[str, Any]:
    """Return the evidence.sign payload for a signature written later than its version."""
    version = session.get(EvidenceVersion, uuid.UUID(entry.details["version"]))
    sig = session.exec(select(Signature).where(Signature.version_id == version.id,
                                               Signature.kind == entry.details["kind"],
                                               Signature.signer_name == entry.details["signer"])).one()
    signature = {"kind": sig.kind, "signer_name": sig.signer_name}
    if sig.image_sha256:
        signature["image_sha256"] = sig.image_sha256
    return {"evidence_id": str(version.evidence_id), "version": version.number,
            "content_hash": version.content_hash, "signature": signature}


def media_of(payload: dict[str, Any]) -> list[str]:
    """Return the sha256 of every file an item's payload refers to."""
    content = payload.get("content") if isinstance(payload.get("content"), dict) else payload
    hashes = [a["sha256"] for a in content.get("attachments", []) if isinstance(a, dict) and "sha256" in a]
    sigs = payload.get("signatures", []) + ([payload["signature"]] if isinstance(payload.get("signature"), dict)
                                            else [])
    hashes += [s["image_sha256"] for s in sigs if isinstance(s, dict) and s.get("image_sha256")]
    return list(dict.fromkeys(hashes))


def conflicted_evidence(session: Session) -> set[uuid.UUID]:
    """Return the evidence this device holds a conflict on: the centre kept a newer version beside its change."""
    return set(session.exec(select(OutboxItem.evidence_id).where(OutboxItem.state == CONFLICT,
                                                                 col(OutboxItem.evidence_id).is_not(None))))


def unsent_evidence(session: Session) -> set[uuid.UUID]:
    """Return the evidence with changes the centre has not yet accepted (a pull must not overwrite them)."""
    return set(session.exec(select(OutboxItem.evidence_id).where(col(OutboxItem.state).in_(UNSENT),
                                                                 col(OutboxItem.evidence_id).is_not(None))))


def status(session: Session) -> dict[str, Any]:
    """Return the queue at a glance: items not yet accepted, those needing the assessor, the oldest waiting."""
    rows = session.exec(select(OutboxItem.state, func.count(), func.min(OutboxItem.created_at))
                        .where(col(OutboxItem.state).in_(UNSENT)).group_by(OutboxItem.state)).all()
    counts = {state: n for state, n, _ in rows}
    oldest = min((at for _, _, at in rows if at is not None), default=None)
    return {"pending": sum(counts.values()), "parked": counts.get(PARKED, 0) + counts.get(CONFLICT, 0),
            "oldest": oldest, "counts": counts}


def outstanding(session: Session) -> dict[str, list[OutboxItem]]:
    """Return every item not yet accepted, by what it waits for: unsent, held, refused, conflict (G22)."""
    found: dict[str, list[OutboxItem]] = {"unsent": [], "held": [], "refused": [], "conflict": []}
    names = {PENDING: "unsent", ATTEMPTED: "unsent", HELD: "held", PARKED: "refused", CONFLICT: "conflict"}
    for item in session.exec(select(OutboxItem).where(col(OutboxItem.state).in_(UNSENT)).order_by(OutboxItem.seq)):
        found[names[item.state]].append(item)
    return found


def blockers(session: Session) -> dict[uuid.UUID, OutboxItem]:
    """Return, per piece of evidence, its earliest item the centre refused or kept as a conflict: the changes
    queued after it on the same evidence wait for the assessor to settle it (G12, G13)."""
    found: dict[uuid.UUID, OutboxItem] = {}
    for item in session.exec(select(OutboxItem).where(col(OutboxItem.state).in_(SETTLED_BY_PERSON),
                                                      col(OutboxItem.evidence_id).is_not(None))
                             .order_by(OutboxItem.seq)):
        found.setdefault(item.evidence_id, item)
    return found


def acknowledged_ids(session: Session) -> list[uuid.UUID]:
    """Return the items the centre said it keeps an answer to, from this device (G21)."""
    return list(session.exec(select(OutboxItem.item_id).where(col(OutboxItem.acknowledged).is_(True))))


def send_again(session: Session, item_ids: list[uuid.UUID], reason: str) -> int:
    """Queue items again, unchanged and under their own ids, that the centre no longer holds; return how many."""
    if not item_ids:
        return 0
    table = OutboxItem.__table__
    done = session.execute(update(table).where(table.c.item_id.in_(item_ids)).values(
        state=PENDING, acknowledged=False, attempts=0, code="sent_again", message=reason))
    return done.rowcount


def sent_chain(session: Session, evidence_id: uuid.UUID, before_seq: int) -> list[uuid.UUID]:
    """Return the items sent earlier for a piece of evidence: what a held change on it may be waiting for."""
    return list(session.exec(select(OutboxItem.item_id).where(
        OutboxItem.evidence_id == evidence_id, OutboxItem.seq < before_seq, OutboxItem.state == SENT)))


def attempted_state(state: str) -> str:
    """Return an item's state once it has been sent: a pending item becomes attempted, any other keeps its state."""
    return ATTEMPTED if state == PENDING else state


def mark_attempted(session: Session, item_ids: list[uuid.UUID]) -> None:
    """Record that these items are about to be sent (G5): committed before the request goes out."""
    table = OutboxItem.__table__
    session.execute(update(table).where(table.c.item_id.in_(item_ids)).values(
        state=case((table.c.state == PENDING, ATTEMPTED), else_=table.c.state), attempts=table.c.attempts + 1,
        attempted_at=utcnow()))


ANSWER_FIELDS = ("state", "code", "message", "acknowledged", "sent_at")


def record_answers(session: Session, answers: list[dict[str, Any]]) -> None:
    """Store the centre's answers (``key``, ``state``, ``code``, ``message``, ``sent_at``, ``acknowledged``): one
    statement per answer that several items share (a batch applied whole shares one), one for all the others."""
    shared: dict[tuple, list[uuid.UUID]] = {}
    for answer in answers:
        shared.setdefault(tuple(answer[name] for name in ANSWER_FIELDS), []).append(answer["key"])
    table = OutboxItem.__table__
    single = []
    for fields, keys in shared.items():
        if len(keys) == 1:
            single.append(dict(zip(ANSWER_FIELDS, fields), key=keys[0]))
            continue
        values = {name: value for name, value in zip(ANSWER_FIELDS, fields) if name != "sent_at" or value is not None}
        session.execute(update(table).where(table.c.item_id.in_(keys)).values(**values))
    if single:
        session.execute(update(table).where(table.c.item_id == bindparam("key")).values(
            state=bindparam("state"), code=bindparam("code"), message=bindparam("message"),
            acknowledged=bindparam("acknowledged"),
            sent_at=func.coalesce(bindparam("sent_at", type_=table.c.sent_at.type), table.c.sent_at)), single)
