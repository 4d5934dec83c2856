"""The table models: plain SQLModel classes with no Flask in them."""
from sqlmodel import SQLModel

from .assessment import AssignmentResult, CriterionDecision, DecisionEvidence, IqaReview, UnitSignOff
from .audit import AuditEntry, AuditHead
from .base import new_id, utcnow
from .evidence import (
    Attachment,
    Blob,
    BlobHolder,
    BlobRendition,
    Evidence,
    EvidenceCriterion,
    EvidenceRangeItem,
    EvidenceReview,
    EvidenceVersion,
    Method,
    Signature,
    SignatureKind,
    Status,
)
from .people import (
    AssessorQualification,
    Candidate,
    CandidateAssignment,
    ExpertWitnessApproval,
    IqaQualification,
    OccupationalCompetence,
    Role,
    RoleGrant,
    SignInAttempt,
    User,
)
from .spec import Criterion, Outcome, Qualification, QualificationUnit, RangeItem, SpecPack, Unit

metadata = SQLModel.metadata

__all__ = [
    "AssessorQualification", "AssignmentResult", "Attachment", "AuditEntry", "AuditHead", "Blob", "BlobHolder", "BlobRendition", "Candidate",
    "CandidateAssignment", "Criterion", "CriterionDecision", "DecisionEvidence", "Evidence",
    "EvidenceCriterion", "EvidenceRangeItem", "EvidenceReview", "EvidenceVersion", "ExpertWitnessApproval",
    "IqaQualification", "IqaReview", "Method", "OccupationalCompetence", "Outcome", "Qualification",
    "QualificationUnit", "RangeItem", "Role", "RoleGrant", "Signature", "SignInAttempt", "SignatureKind", "SpecPack", "Status",
    "Unit", "UnitSignOff", "User", "metadata", "new_id", "utcnow",
]

# Field sync (appended so concurrent edits above stay clean).
from .sync import (  # noqa: E402
    ConflictCopy,
    Device,
    OutboxItem,
    SyncConflict,
    SyncReceipt,
    SyncState,
    Tombstone,
    Upload,
)

__all__ += ["ConflictCopy", "Device", "OutboxItem", "SyncConflict", "SyncReceipt", "SyncState", "Tombstone", "Upload"]

# Internal quality assurance sampling.
from .quality import IqaAction, Sample, SampleItem, SamplingStrategy  # noqa: E402

__all__ += ["IqaAction", "Sample", "SampleItem", "SamplingStrategy"]

# Inspection access and received portfolio packs (appended so concurrent edits above stay clean).
from .inspection import EqaGrant, EqaGrantCandidate, ImportedPack  # noqa: E402

__all__ += ["EqaGrant", "EqaGrantCandidate", "ImportedPack"]
