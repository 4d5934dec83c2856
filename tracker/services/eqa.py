"""Inspection access: an administrator grants an EQA read-only access to named candidates for a limited time."""
import uuid
from dataclasses import dataclass
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session, col, select

from ..audit import Actor, record
from ..clock import aware
from ..errors import InvalidInput, NotFound, NotPermitted
from ..models import Candidate, EqaGrant, EqaGrantCandidate, Role, User
from . import validate
from .inputs import Moment, paragraphs, text

MAX_DAYS = 366  # an inspection visit, or a year's sampling at most; longer needs a new grant


class GrantIn(BaseModel):
    """A grant as an administrator fills it in."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    eqa_id: uuid.UUID
    candidate_ids: list[uuid.UUID] = Field(min_length=1, max_length=500)
    starts_at: Moment
    ends_at: Moment
    reason: paragraphs(2000, min_length=1)


@dataclass(frozen=True)
class Standing:
    """Where an EQA account stands right now: its active grants, and when the last one ended if none is active."""

    active: list[EqaGrant]
    ended_at: datetime | None  # the latest end of a grant that has ended (None: never had one, or one is active)
    revoked: bool = False

    @property
    def refused(self) -> bool:
        """Say whether every page must be refused: a grant existed but none is active now."""
        return not self.active and self.ended_at is not None


def is_eqa(user: User) -> bool:
    """Say whether an account is an external quality assurer's."""
    return Role.EQA in user.role_names


def active(grant: EqaGrant, now: datetime) -> bool:
    """Say whether a grant is in force at a moment: started, not ended, not revoked."""
    return grant.revoked_at is None and aware(grant.starts_at) <= now <= aware(grant.ends_at)


def standing(session: Session, user: User, now: datetime) -> Standing:
    """Return an EQA's grants in force now, or when their access ended."""
    grants = list(session.exec(select(EqaGrant).where(EqaGrant.eqa_id == user.id)))
    live = [g for g in grants if active(g, now)]
    if live or not grants:
        return Standing(live, None)
    past = [g for g in grants if aware(g.starts_at) <= now]
    if not past:  # every grant is still to start: nothing to open yet, nothing has ended
        return Standing([], None)
    last = max(past, key=lambda g: aware(g.revoked_at or g.ends_at))
    return Standing([], aware(last.revoked_at or last.ends_at), last.revoked_at is not None)


def granted_candidates(session: Session, user: User, now: datetime) -> set[uuid.UUID]:
    """Return the candidates an EQA may read now."""
    live = standing(session, user, now).active
    if not live:
        return set()
    return set(session.exec(select(EqaGrantCandidate.candidate_id).where(
        col(EqaGrantCandidate.grant_id).in_([g.id for g in live]))))


def grant(session: Session, actor: Actor, data: GrantIn | dict) -> EqaGrant:
    """Grant an EQA read-only access to named candidates from one moment to another."""
    if Role.ADMINISTRATOR not in actor.roles:
        raise NotPermitted("Only the centre administrator can grant inspection access.")
    data = validate(GrantIn, data)
    eqa = session.get(User, data.eqa_id)
    if eqa is None or Role.EQA not in eqa.role_names:
        raise InvalidInput("Choose a person who holds the EQA role.", field="eqa_id")
    starts, ends = aware(data.starts_at), aware(data.ends_at)
    if ends <= starts:
        raise InvalidInput("The access must end after it starts.", field="ends_at")
    if (ends - starts).days > MAX_DAYS:
        raise InvalidInput(f"Grant access for {MAX_DAYS} days at most from its start to its end; grant again to "
                           "extend it.", field="ends_at")
    wanted = set(data.candidate_ids)
    found = set(session.exec(select(Candidate.id).where(col(Candidate.id).in_(wanted))))
    if wanted - found:
        raise InvalidInput("One of the chosen candidates is not registered at this centre.", field="candidate_ids")
    row = EqaGrant(eqa_id=eqa.id, starts_at=starts, ends_at=ends, reason=data.reason, granted_by_id=actor.id)
    session.add(row)
    session.flush()
    session.add_all([EqaGrantCandidate(grant_id=row.id, candidate_id=c) for c in sorted(wanted)])
    record(session, actor, "eqa.granted", row, eqa=str(eqa.id), candidates=sorted(str(c) for c in wanted),
           starts_at=starts, ends_at=ends, reason=data.reason)
    return row


def revoke(session: Session, actor: Actor, grant_id: uuid.UUID | str, reason: str, now: datetime) -> EqaGrant:
    """End a grant now, with a reason kept in the audit log."""
    if Role.ADMINISTRATOR not in actor.roles:
        raise NotPermitted("Only the centre administrator can withdraw inspection access.")
    try:
        row = session.get(EqaGrant, uuid.UUID(str(grant_id)))
    except ValueError:
        row = None
    if row is None:
        raise NotFound("inspection access")
    if row.revoked_at is not None:
        raise InvalidInput("This access has already been withdrawn.", field="reason")
    reason = text(reason, "reason", max_length=500, label="reason the access is withdrawn")
    if not reason:
        raise InvalidInput("Say why the access is withdrawn.", field="reason")
    row.revoked_at, row.revoked_by_id, row.revoked_reason = now, actor.id, reason
    session.add(row)
    record(session, actor, "eqa.revoked", row, eqa=str(row.eqa_id), reason=row.revoked_reason)
    return row


def grants(session: Session) -> list[tuple[EqaGrant, str, list[str]]]:
    """Return every grant with its EQA's name and its candidates' names, newest first, in three queries."""
    rows = list(session.exec(select(EqaGrant, User.name).join(User, User.id == EqaGrant.eqa_id)
                             .order_by(col(EqaGrant.granted_at).desc())))
    names: dict[uuid.UUID, list[str]] = {g.id: [] for g, _ in rows}
    if rows:
        for grant_id, name in session.exec(select(EqaGrantCandidate.grant_id, User.name)
                                           .join(Candidate, Candidate.id == EqaGrantCandidate.candidate_id)
                                           .join(User, User.id == Candidate.user_id)
                                           .where(col(EqaGrantCandidate.grant_id).in_(list(names)))
                                           .order_by(User.name)):
            names[grant_id].append(name)
    return [(g, name, names[g.id]) for g, name in rows]
