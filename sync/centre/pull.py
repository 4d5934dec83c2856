"""The centre's side of a pull: whole-row snapshots of what a device's person works on, after a cursor.

Scope comes from the device's person alone: the candidates they are attached to now as assessor or expert
witness (an expert witness gets only the evidence they recorded). The cursor is built from the audit log's
``seq``, which numbers changes in commit order and names the candidate each concerns: a candidate touched since
the cursor is sent again whole. A round of pages is fixed to the newest seq when it began, so changes made while
a device is paging are sent in its next round. Pages split between candidates, never inside one.

The cursor, opaque to devices, reads ``2.<user>.<from>.<to>.<last candidate>.<packs>.<mark>``: ``from`` is empty
on a full pull, ``last candidate`` is empty once the round is complete, ``packs`` fingerprints the loaded spec
packs so a corrected pack is sent again, and ``mark`` is the start of the audit chain's hash at ``to``. A centre
restored from a backup has other entries from there on, even once it has taken as many new changes: the mark
tells, and the device fetches everything again (G10). Cursors of version 1, without the mark, are still read.
"""
import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, SQLModel, col, select

from tracker.errors import Refusal
from tracker.models import (
    AssessorQualification,
    AssignmentResult,
    Attachment,
    AuditEntry,
    AuditHead,
    Blob,
    Candidate,
    CandidateAssignment,
    Criterion,
    CriterionDecision,
    DecisionEvidence,
    Evidence,
    EvidenceCriterion,
    EvidenceRangeItem,
    EvidenceReview,
    EvidenceVersion,
    ExpertWitnessApproval,
    IqaQualification,
    OccupationalCompetence,
    Outcome,
    Qualification,
    QualificationUnit,
    RangeItem,
    Role,
    RoleGrant,
    Signature,
    SpecPack,
    Tombstone,
    Unit,
    UnitSignOff,
    User,
)

DEFAULT_LIMIT, MAX_LIMIT = 50, 200
SCOPE_ROLES = (Role.ASSESSOR, Role.EXPERT_WITNESS)
SPEC_TABLES = (SpecPack, Qualification, Unit, QualificationUnit, Outcome, Criterion, RangeItem)
CREDENTIALS = (RoleGrant, AssessorQualification, OccupationalCompetence, ExpertWitnessApproval, IqaQualification)
PEOPLE_ENTITIES = frozenset({"user", "rolegrant", "assessorqualification", "occupationalcompetence",
                             "expertwitnessapproval", "iqaqualification"})
HIDDEN_COLUMNS = {"user_account": {"password_hash", "session_epoch"}}  # the centre's own business
VERSION = "2"
MARK = 16  # hex digits of the audit hash a cursor keeps


class ResyncRequired(Refusal):
    """A cursor the centre cannot continue from: the device pulls again from the start."""

    kind = "resync"

    def __init__(self, message: str):
        super().__init__("resync_required", message)


@dataclass(frozen=True)
class Cursor:
    """Where a device has got to: changes after ``start`` (None: everything) up to ``end``, and the last candidate."""

    user_id: uuid.UUID
    start: int | None
    end: int
    last: uuid.UUID | None
    packs: str
    mark: str | None = None  # the audit chain's hash at ``end``, shortened; None in a version 1 cursor

    def __str__(self) -> str:
        start = "" if self.start is None else str(self.start)
        last = "" if self.last is None else self.last.hex
        return ".".join((VERSION, self.user_id.hex, start, str(self.end), last, self.packs, self.mark or ""))


@dataclass
class Page:
    """One page of a pull, as the device receives it."""

    cursor: str
    more: bool = False
    reset: bool = False
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    removed: dict[str, list[str]] = field(default_factory=lambda: {"candidate": []})

    def as_dict(self) -> dict[str, Any]:
        """Return the page as plain JSON data."""
        return {"cursor": self.cursor, "more": self.more, "reset": self.reset, "tables": self.tables,
                "removed": self.removed}


# --- The cursor -----------------------------------------------------------------------------------------------


def parse_cursor(text: str | None, user_id: uuid.UUID, head: int, session: Session | None = None) -> Cursor | None:
    """Read a device's cursor, or refuse one this centre cannot honour (malformed, ahead, someone else's, or made
    by the centre before it was restored from a backup)."""
    if text is None or text == "":
        return None
    try:
        version, user, start, end, last, packs, *rest = str(text).split(".")
        if version not in ("1", VERSION) or len(rest) != (version == VERSION):
            raise ValueError(version)
        cursor = Cursor(uuid.UUID(hex=user), int(start) if start else None, int(end),
                        uuid.UUID(hex=last) if last else None, packs, rest[0] or None if rest else None)
    except ValueError:
        raise ResyncRequired("The device's place in the centre's changes could not be read. It will fetch "
                             "everything again; nothing unsent is lost.") from None
    if cursor.end < 0 or (cursor.start is not None and not 0 <= cursor.start <= cursor.end):
        raise ResyncRequired("The device's place in the centre's changes is not one this centre made. It will "
                             "fetch everything again; nothing unsent is lost.")
    if cursor.user_id != user_id:
        raise ResyncRequired("The device's copy was made for another person. It will fetch everything again.")
    if cursor.end > head or (session is not None and cursor.mark is not None
                             and cursor.mark != mark_at(session, cursor.end)):
        raise ResyncRequired("The device has seen changes this centre no longer has (it may have been restored "
                             "from a backup). It will fetch everything again and send what the centre is missing.")
    return cursor


def mark_at(session: Session, seq: int) -> str:
    """Return the start of the audit chain's hash at a seq ("" before the first change)."""
    digest = session.exec(select(AuditEntry.hash).where(AuditEntry.seq == seq)).first() if seq else None
    return (digest or "")[:MARK]


def head_seq(session: Session) -> int:
    """Return the newest audit seq: every change so far is at or below it."""
    head = session.get(AuditHead, 1)
    return head.seq if head else 0


def packs_fingerprint(session: Session) -> str:
    """Return a short fingerprint of the loaded spec packs and their versions."""
    rows = session.exec(select(SpecPack.key, SpecPack.sha256).order_by(SpecPack.key)).all()
    return hashlib.sha256("|".join(f"{k}:{h}" for k, h in rows).encode()).hexdigest()[:16]


# --- The page -------------------------------------------------------------------------------------------------


def pull(session: Session, user: User, after: str | None, limit: int = DEFAULT_LIMIT) -> Page:
    """Return the next page of a person's scoped snapshot after a cursor."""
    limit = max(1, min(int(limit), MAX_LIMIT))
    head = head_seq(session)
    cursor = parse_cursor(after, user.id, head, session)
    packs = packs_fingerprint(session)
    scope = _scope(session, user.id)
    if cursor is not None and cursor.last is None and cursor.end == head and cursor.packs == packs:
        # Nothing has happened since: the tiny answer (a version 1 cursor comes back with its mark).
        return Page(cursor=str(replace(cursor, mark=mark_at(session, cursor.end))))
    continuing = cursor is not None and cursor.last is not None
    if continuing:
        start, end = cursor.start, cursor.end
    else:
        start, end = (None, head) if cursor is None else (cursor.end, head)
    changed = sorted(scope if start is None else _touched(session, scope, start, end), key=str)
    if continuing:
        changed = [c for c in changed if str(c) > str(cursor.last)]
    batch, more = changed[:limit], len(changed) > limit
    page = Page(cursor=str(Cursor(user.id, start if more else end, end, batch[-1] if more else None, packs,
                                  mark_at(session, end))),
                more=more, reset=start is None and not continuing)
    first = not continuing
    if first and (start is None or cursor.packs != packs):
        _add(page, _spec_rows(session))
    people_changed = first and start is not None and _people_touched(session, start, end)
    _add(page, _snapshot(session, user, scope, batch, everyone=(first and start is None) or people_changed))
    if first and start is not None:
        page.removed = _removed(session, user.id, scope, start, end)
    return page


def _add(page: Page, tables: dict[str, list[dict[str, Any]]]) -> None:
    for name, rows in tables.items():
        if rows:
            page.tables.setdefault(name, []).extend(rows)


def _scope(session: Session, user_id: uuid.UUID) -> dict[uuid.UUID, frozenset[str]]:
    """Return the person's candidates now, each with the roles they are attached in."""
    found: dict[uuid.UUID, set[str]] = {}
    for candidate_id, role in session.exec(select(CandidateAssignment.candidate_id, CandidateAssignment.role).where(
            CandidateAssignment.user_id == user_id, col(CandidateAssignment.ended_on).is_(None),
            col(CandidateAssignment.role).in_(SCOPE_ROLES))):
        found.setdefault(candidate_id, set()).add(role)
    return {k: frozenset(v) for k, v in found.items()}


def _touched(session: Session, scope: Iterable[uuid.UUID], start: int, end: int) -> set[uuid.UUID]:
    """Return the in-scope candidates changed after ``start`` up to ``end``."""
    ids = list(scope)
    if not ids:
        return set()
    return set(session.exec(select(AuditEntry.candidate_id).distinct().where(
        AuditEntry.seq > start, AuditEntry.seq <= end, col(AuditEntry.candidate_id).in_(ids))))


def _people_touched(session: Session, start: int, end: int) -> bool:
    """Say whether anyone's account, roles or credentials changed in the window."""
    return session.exec(select(func.count()).select_from(AuditEntry).where(
        AuditEntry.seq > start, AuditEntry.seq <= end, col(AuditEntry.entity_type).in_(PEOPLE_ENTITIES))).one() > 0


def _removed(session: Session, user_id: uuid.UUID, scope: dict, start: int, end: int) -> dict[str, list[str]]:
    """Return candidates the person was attached to that left their scope, and evidence deleted, in the window."""
    touched = set(session.exec(select(AuditEntry.candidate_id).distinct().where(
        AuditEntry.seq > start, AuditEntry.seq <= end, col(AuditEntry.candidate_id).is_not(None))))
    former = set(session.exec(select(CandidateAssignment.candidate_id).where(
        CandidateAssignment.user_id == user_id, col(CandidateAssignment.role).in_(SCOPE_ROLES),
        col(CandidateAssignment.candidate_id).in_(touched)))) if touched else set()
    removed: dict[str, list[str]] = {"candidate": sorted(str(c) for c in former - set(scope))}
    in_scope = touched & set(scope)
    if in_scope:
        deleted = session.exec(select(Tombstone.entity_id).where(
            Tombstone.entity_type == "evidence", col(Tombstone.candidate_id).in_(in_scope))).all()
        if deleted:
            removed["evidence"] = sorted(str(e) for e in deleted)
    return removed


# --- Rows -----------------------------------------------------------------------------------------------------


def row_dict(row: SQLModel) -> dict[str, Any]:
    """Return a whole row as JSON data: uuids as text, datetimes ISO-8601 UTC, dates ISO."""
    table = type(row).__table__
    hidden = HIDDEN_COLUMNS.get(table.name, set())
    return {c.name: _json(getattr(row, c.key)) for c in table.columns if c.name not in hidden}


def _json(value: Any) -> Any:
    if isinstance(value, uuid.UUID):
        return str(value)
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()
    if isinstance(value, date):
        return value.isoformat()
    return value


def _rows(rows: Iterable[SQLModel]) -> list[dict[str, Any]]:
    return [row_dict(r) for r in rows]


def _name(model: type[SQLModel]) -> str:
    return model.__tablename__


def _spec_rows(session: Session) -> dict[str, list[dict[str, Any]]]:
    """Return the spec pack tables whole, parents before children."""
    return {_name(m): _rows(session.exec(select(m).order_by(*m.__table__.primary_key.columns)))
            for m in SPEC_TABLES}


def _snapshot(session: Session, user: User, scope: dict[uuid.UUID, frozenset[str]], batch: list[uuid.UUID],
              *, everyone: bool) -> dict[str, list[dict[str, Any]]]:
    """Return whole snapshots of these candidates, and the people they need, in a fixed number of queries."""
    tables: dict[str, list[dict[str, Any]]] = {}
    if not batch and not everyone:
        return tables
    candidates = session.exec(select(Candidate).where(col(Candidate.id).in_(batch))).all() if batch else []
    assignments = session.exec(select(CandidateAssignment).where(
        col(CandidateAssignment.candidate_id).in_(batch))).all() if batch else []
    full = [c for c in batch if Role.ASSESSOR in scope[c]]
    limited = [c for c in batch if Role.ASSESSOR not in scope[c]]  # expert witness only: what they recorded
    evidence = _evidence(session, user.id, full, limited)
    evidence_ids = [e.id for e in evidence]
    versions = session.exec(select(EvidenceVersion).where(col(EvidenceVersion.evidence_id).in_(evidence_ids))
                            .order_by(EvidenceVersion.evidence_id, EvidenceVersion.number)).all() if evidence else []
    version_ids = [v.id for v in versions]
    by_version = {m: session.exec(select(m).where(col(m.version_id).in_(version_ids))).all() if versions else []
                  for m in (EvidenceCriterion, EvidenceRangeItem, Attachment, Signature)}
    reviews = session.exec(select(EvidenceReview).where(
        col(EvidenceReview.evidence_id).in_(evidence_ids))).all() if evidence and full else []
    assessed = _assessment(session, full)
    hashes = {a.sha256 for a in by_version[Attachment]} | {s.image_sha256 for s in by_version[Signature]
                                                           if s.image_sha256}
    blobs = session.exec(select(Blob).where(col(Blob.sha256).in_(hashes)).order_by(Blob.sha256)).all() \
        if hashes else []
    people = {user.id} if everyone else set()
    people |= {c.user_id for c in candidates} | {a.user_id for a in assignments}
    people |= {v.author_id for v in versions} | {e.created_by_id for e in evidence}
    people |= {s.signer_id for s in by_version[Signature] if s.signer_id} | {r.reviewer_id for r in reviews}
    for rows in assessed.values():
        people |= {getattr(r, a) for r in rows for a in ("assessor_id", "marked_by_id", "reopened_by_id")
                   if getattr(r, a, None)}
    if everyone:
        people |= _colleagues(session, scope)
    tables.update(_people(session, people))
    tables.update({"candidate": _rows(candidates), "candidateassignment": _rows(assignments),
                   "blob": _rows(blobs), "evidence": _rows(evidence), "evidenceversion": _rows(versions)})
    tables.update({_name(m): _rows(rows) for m, rows in by_version.items()})
    tables["evidencereview"] = _rows(reviews)
    tables.update({_name(m): _rows(rows) for m, rows in assessed.items()})
    return tables


def _evidence(session: Session, user_id: uuid.UUID, full: list, limited: list) -> list[Evidence]:
    query = select(Evidence).order_by(Evidence.candidate_id, Evidence.id)
    rows = list(session.exec(query.where(col(Evidence.candidate_id).in_(full)))) if full else []
    if limited:
        rows += session.exec(query.where(col(Evidence.candidate_id).in_(limited),
                                         Evidence.created_by_id == user_id)).all()
    return rows


def _assessment(session: Session, candidate_ids: list[uuid.UUID]) -> dict[type[SQLModel], list[SQLModel]]:
    """Return the assessment rows of candidates the person assesses: decisions, sign-offs, results."""
    if not candidate_ids:
        return {}
    decisions = session.exec(select(CriterionDecision).where(
        col(CriterionDecision.candidate_id).in_(candidate_ids))).all()
    decision_ids = [d.id for d in decisions]
    links = session.exec(select(DecisionEvidence).where(
        col(DecisionEvidence.decision_id).in_(decision_ids))).all() if decisions else []
    return {
        CriterionDecision: decisions,
        DecisionEvidence: links,
        UnitSignOff: session.exec(select(UnitSignOff).where(col(UnitSignOff.candidate_id).in_(candidate_ids))).all(),
        AssignmentResult: session.exec(select(AssignmentResult).where(
            col(AssignmentResult.candidate_id).in_(candidate_ids))).all(),
    }


def _colleagues(session: Session, scope: dict[uuid.UUID, frozenset[str]]) -> set[uuid.UUID]:
    """Return everyone attached to the person's candidates (the rules check observers' standing)."""
    if not scope:
        return set()
    return set(session.exec(select(CandidateAssignment.user_id).where(
        col(CandidateAssignment.candidate_id).in_(list(scope)))))


def _people(session: Session, user_ids: set[uuid.UUID]) -> dict[str, list[dict[str, Any]]]:
    """Return people's accounts (never their password hashes), roles and credentials, and who verified them."""
    if not user_ids:
        return {}
    ids = list(user_ids)
    credentials = {m: session.exec(select(m).where(col(m.user_id).in_(ids))).all() for m in CREDENTIALS}
    referees = {getattr(r, a) for rows in credentials.values() for r in rows
                for a in ("granted_by_id", "verified_by_id", "approved_by_id") if getattr(r, a, None)}
    accounts = session.exec(select(User).where(col(User.id).in_(list(user_ids | referees)))
                            .order_by(User.id)).all()
    tables = {"user_account": _rows(accounts)}
    tables.update({_name(m): _rows(rows) for m, rows in credentials.items()})
    return tables
