"""Deleting a mistaken draft at the centre, leaving a tombstone so a device's late retry never brings it back."""
import uuid

from sqlalchemy import delete
from sqlmodel import Session, col, select

from ..audit import Actor, record
from ..errors import NotPermitted
from ..models import (
    Attachment,
    DecisionEvidence,
    EvidenceCriterion,
    EvidenceRangeItem,
    EvidenceReview,
    EvidenceVersion,
    Role,
    Signature,
    Status,
    Tombstone,
)
from . import evidence as evidence_service
from .inputs import text
from .people import require_role


def delete_draft(session: Session, actor: Actor, evidence_id: uuid.UUID | str, reason: str) -> Tombstone:
    """Delete a draft that was recorded by mistake (administrators only), keeping a tombstone and an audit entry."""
    require_role(actor, Role.ADMINISTRATOR)
    reason = text(reason, "reason", max_length=500, label="reason for deleting this draft", required=True)
    item = evidence_service.get(session, evidence_id)
    if item.status != Status.DRAFT:
        raise NotPermitted("Only a draft can be deleted; submitted evidence stays on record.")
    version_ids = list(session.exec(select(EvidenceVersion.id).where(EvidenceVersion.evidence_id == item.id)
                                    .order_by(col(EvidenceVersion.number).desc())))
    for model in (EvidenceCriterion, EvidenceRangeItem, Attachment, Signature):
        session.execute(delete(model).where(col(model.version_id).in_(version_ids)))
    session.execute(delete(EvidenceReview).where(EvidenceReview.evidence_id == item.id))
    session.execute(delete(DecisionEvidence).where(DecisionEvidence.evidence_id == item.id))
    for version_id in version_ids:  # newest first: each version names the one it replaces
        session.execute(delete(EvidenceVersion).where(EvidenceVersion.id == version_id))
    stone = Tombstone(entity_id=item.id, entity_type="evidence", candidate_id=item.candidate_id,
                      deleted_by_id=actor.id, reason=reason)
    session.add(stone)
    record(session, actor, "evidence.deleted", item, candidate=str(item.candidate_id), reason=reason)
    session.delete(item)
    session.flush()
    return stone
