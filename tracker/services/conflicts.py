"""Conflicts from field devices, as the centre lists them: a change made on a version the centre had replaced,
kept beside the centre's version until the assessor settles it on the device (G13)."""
import uuid
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session, col, func, select

from ..errors import NotFound, NotPermitted
from ..models import Candidate, Device, EvidenceVersion, Role, SyncConflict, User
from .evidence import content_of

SHOWN = ("title", "activity_date", "setting", "narrative", "criteria")  # what a person compares


@dataclass
class Shown:
    """One open conflict with what a person needs to compare the two versions."""

    conflict: SyncConflict
    person: str
    device: str
    candidate: str
    title: str
    centre: dict[str, Any]  # the centre's version the change ran into
    proposed: dict[str, Any]  # the device's change, as sent
    what: str  # the kind of change, in words


def _may_see_all(viewer: User) -> bool:
    return Role.ADMINISTRATOR in viewer.role_names


def open_conflicts(session: Session, viewer: User) -> list[Shown]:
    """Return the open conflicts a person may see: their own, or every one for an administrator."""
    if not (_may_see_all(viewer) or viewer.role_names & {Role.ASSESSOR, Role.EXPERT_WITNESS}):
        raise NotPermitted("Only assessors, expert witnesses and administrators see conflicts from field devices.")
    query = select(SyncConflict).where(col(SyncConflict.resolved_at).is_(None)).order_by(SyncConflict.created_at)
    if not _may_see_all(viewer):
        query = query.where(SyncConflict.user_id == viewer.id)
    return _shown(session, list(session.exec(query)))


def open_count(session: Session, viewer: User) -> int:
    """Return how many open conflicts a person would see (none for roles that see none)."""
    if not (_may_see_all(viewer) or viewer.role_names & {Role.ASSESSOR, Role.EXPERT_WITNESS}):
        return 0
    query = select(func.count()).select_from(SyncConflict).where(col(SyncConflict.resolved_at).is_(None))
    if not _may_see_all(viewer):
        query = query.where(SyncConflict.user_id == viewer.id)
    return session.exec(query).one()


def get(session: Session, viewer: User, item_id: object) -> Shown:
    """Return one conflict, open or settled, if the person may see it."""
    try:
        key = uuid.UUID(str(item_id))
    except ValueError:
        raise NotFound("conflict") from None
    conflict = session.get(SyncConflict, key)
    if conflict is None or not (_may_see_all(viewer) or conflict.user_id == viewer.id):
        raise NotFound("conflict")
    return _shown(session, [conflict])[0]


def _shown(session: Session, conflicts: list[SyncConflict]) -> list[Shown]:
    """Load the names and both versions for a list of conflicts, in a fixed number of queries."""
    if not conflicts:
        return []
    people = dict(session.exec(select(User.id, User.name).where(
        col(User.id).in_({c.user_id for c in conflicts}))).all())
    devices = dict(session.exec(select(Device.id, Device.name).where(
        col(Device.id).in_({c.device_id for c in conflicts}))).all())
    candidates = dict(session.exec(select(Candidate.id, User.name).join(User, User.id == Candidate.user_id).where(
        col(Candidate.id).in_({c.candidate_id for c in conflicts if c.candidate_id}))).all())
    versions = {(v.evidence_id, v.content_hash): v for v in session.exec(select(EvidenceVersion).where(
        col(EvidenceVersion.evidence_id).in_({c.evidence_id for c in conflicts}),
        col(EvidenceVersion.content_hash).in_({c.centre_hash for c in conflicts})))}
    return [Shown(c, people.get(c.user_id, ""), devices.get(c.device_id, ""), candidates.get(c.candidate_id, ""),
                  *(_sides(session, c, versions.get((c.evidence_id, c.centre_hash))))) for c in conflicts]


def _sides(session: Session, conflict: SyncConflict, version: EvidenceVersion | None) -> tuple:
    """Return the evidence's title, the centre's side, the device's side and the kind of change in words."""
    centre = plain_fields(content_of(session, version).model_dump(mode="json")) if version else {}
    payload = conflict.proposed or {}
    if conflict.kind == "evidence.revise":
        proposed, what = plain_fields(payload.get("content") or {}), "a new version"
    elif conflict.kind == "evidence.sign":
        signature = payload.get("signature") or {}
        proposed = {"signature": f"{signature.get('kind', 'a')} signature by {signature.get('signer_name') or 'the signer'}"}
        what = "a signature"
    else:
        proposed, what = {"submission": f"submit version {payload.get('version')}"}, "a submission"
    title = centre.get("title") or proposed.get("title") or ""
    return title, centre, proposed, what


def plain_fields(content: dict[str, Any]) -> dict[str, Any]:
    """Keep the fields a person compares, with criteria as "1.1: note" lines."""
    shown = {name: content.get(name) for name in SHOWN if name in content}
    if "criteria" in shown:
        shown["criteria"] = [f"{c.get('code')}: {c.get('note') or ''}".rstrip(": ") for c in shown["criteria"] or []]
    return shown


