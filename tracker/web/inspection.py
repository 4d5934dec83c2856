"""Inspection: an EQA's read-only visit (granted candidates, centre records, the audit trail), and its app-wide guard."""
import uuid
from datetime import datetime

from flask import Blueprint, render_template, request
from flask_login import current_user, login_required
from sqlalchemy import func
from sqlmodel import Session, col, select

from .. import access
from ..audit import record
from ..audit import verify as verify_chain
from ..clock import now
from ..db import get_session
from ..errors import NotPermitted
from ..models import (
    AssessorQualification,
    AuditEntry,
    Candidate,
    Criterion,
    CriterionDecision,
    Evidence,
    ExpertWitnessApproval,
    IqaQualification,
    IqaReview,
    OccupationalCompetence,
    Role,
    Unit,
    UnitSignOff,
    User,
)
from ..services import eqa
from .auth import actor, me

bp = Blueprint("inspection", __name__, url_prefix="/inspection")
PAGE_SIZE = 50
OPEN_TO_EQA = ("auth.", "static")  # signing in and out, and the stylesheet, stay open when access has ended


# --- The app-wide guard ---------------------------------------------------------------------------------------


def guard():  # noqa: ANN201
    """Hold every EQA request to the grant: read-only, refused once access ended, and every page logged."""
    endpoint = request.endpoint or ""
    # The device API authenticates its bearer token, never the browser session, so a session is no one there.
    if not endpoint or endpoint.startswith(OPEN_TO_EQA) or request.blueprint == "api" \
            or not current_user.is_authenticated:
        return None
    user = me()
    if not eqa.is_eqa(user):
        return None
    if request.method not in ("GET", "HEAD"):
        raise NotPermitted("Inspection access is read-only: an EQA cannot change anything in the tracker.")
    session = get_session()
    standing = eqa.standing(session, user, now())
    if standing.refused:
        return render_template("inspection/ended.html", standing=standing), 403
    if not standing.active and endpoint.startswith("quality."):  # the centre's QA records only during a visit
        raise NotPermitted("You have no inspection access in force; ask the centre to grant it.")
    if standing.active:
        record(session, actor(), "eqa.viewed", user, path=request.full_path.rstrip("?"),
               candidate=_candidate_viewed(session))
        session.commit()
    return None


def _candidate_viewed(session: Session) -> str | None:
    """Return the candidate a page concerns, so the trail can be filtered by candidate."""
    args = request.view_args or {}
    if "candidate_id" in args:
        return str(args["candidate_id"])
    try:
        evidence = session.get(Evidence, uuid.UUID(str(args["evidence_id"]))) if "evidence_id" in args else None
    except ValueError:
        evidence = None
    return str(evidence.candidate_id) if evidence else None


# --- Pages ------------------------------------------------------------------------------------------------------


def _inspector_or_administrator(session: Session) -> set[uuid.UUID] | None:
    """Return the candidates an EQA may read now (None for an administrator, who sees the whole centre)."""
    user = me()
    if Role.ADMINISTRATOR in user.role_names:
        return None
    access.require(eqa.is_eqa(user), "Only an external quality assurer or the centre administrator can open this.")
    granted = eqa.granted_candidates(session, user, now())
    access.require(bool(granted), "You have no inspection access in force. Ask the centre to grant it.")
    return granted


@bp.get("/")
@login_required
def index():  # noqa: ANN201
    """Show an EQA the candidates they may inspect, until when, and the way to the centre's records."""
    session, user = get_session(), me()
    access.require(eqa.is_eqa(user), "This page is for external quality assurers.")
    standing = eqa.standing(session, user, now())
    ids = eqa.granted_candidates(session, user, now())
    rows = session.exec(select(Candidate, User.name).join(User, User.id == Candidate.user_id).where(
        col(Candidate.id).in_(ids)).order_by(User.name)).all() if ids else []
    ends = max((g.ends_at for g in standing.active), default=None)
    return render_template("inspection/index.html", rows=rows, ends=ends, standing=standing)


@bp.get("/records")
@login_required
def records():  # noqa: ANN201
    """Show the centre's records an EQA samples: staff credentials, expert-witness approvals, IQA decisions."""
    session = get_session()
    granted = _inspector_or_administrator(session)
    names = dict(session.exec(select(User.id, User.name)).all())
    # A review concerns a decision (interim) or a unit sign-off (summative): one side of each pair of joins is empty.
    reviews = select(IqaReview, CriterionDecision, Criterion.code, UnitSignOff, Unit.code).outerjoin(
        CriterionDecision, CriterionDecision.id == IqaReview.decision_id).outerjoin(
        Criterion, Criterion.id == CriterionDecision.criterion_id).outerjoin(
        UnitSignOff, UnitSignOff.id == IqaReview.signoff_id).outerjoin(
        Unit, Unit.id == UnitSignOff.unit_id).order_by(col(IqaReview.created_at).desc())
    if granted is not None:
        reviews = reviews.where(func.coalesce(CriterionDecision.candidate_id, UnitSignOff.candidate_id).in_(granted))
    candidates = dict(session.exec(select(Candidate.id, User.name).join(User, User.id == Candidate.user_id)).all())
    return render_template(
        "inspection/records.html", names=names, candidates=candidates,
        qualifications=session.exec(select(AssessorQualification).order_by(AssessorQualification.verified_on)).all(),
        competences=session.exec(select(OccupationalCompetence).order_by(OccupationalCompetence.verified_on)).all(),
        approvals=session.exec(select(ExpertWitnessApproval).order_by(ExpertWitnessApproval.approved_on)).all(),
        iqa_qualifications=session.exec(select(IqaQualification).order_by(IqaQualification.verified_on)).all(),
        reviews=session.exec(reviews).all())


@bp.get("/audit")
@login_required
def audit():  # noqa: ANN201
    """Show the audit trail, newest first, a page at a time, filtered by candidate, with the chain's state."""
    session = get_session()
    granted = _inspector_or_administrator(session)
    choices = _candidate_choices(session, granted)
    chosen = _chosen(request.args.get("candidate", ""), choices)
    page = max(1, request.args.get("page", 1, type=int) or 1)
    query = select(AuditEntry)
    if chosen is not None:
        query = query.where(AuditEntry.candidate_id == chosen)
    elif granted is not None:  # the granted candidates' entries and the centre's own, never another candidate's
        query = query.where(col(AuditEntry.candidate_id).in_(granted) | col(AuditEntry.candidate_id).is_(None))
    if granted is not None:  # nor the centre's entries about another candidate's account (their name, their email)
        query = query.where(col(AuditEntry.entity_id).not_in(_other_candidates_accounts(session, granted)))
    total = session.exec(select(func.count()).select_from(query.subquery())).one()
    entries = session.exec(query.order_by(col(AuditEntry.seq).desc()).offset((page - 1) * PAGE_SIZE)
                           .limit(PAGE_SIZE)).all()
    names = dict(session.exec(select(User.id, User.name).where(
        col(User.id).in_({e.actor_id for e in entries if e.actor_id}))).all()) if entries else {}
    return render_template("inspection/audit.html", entries=entries, names=names, choices=choices, chosen=chosen,
                           page=page, pages=max(1, -(-total // PAGE_SIZE)), total=total,
                           chain=verify_chain(session))


def _other_candidates_accounts(session: Session, granted: set[uuid.UUID]) -> list[str]:
    """Return the account ids (as the audit log spells them) of the candidates an EQA's grant does not name."""
    return [str(u) for u in session.exec(select(Candidate.user_id).where(col(Candidate.id).not_in(granted)))]


def _candidate_choices(session: Session, granted: set[uuid.UUID] | None) -> list[tuple[uuid.UUID, str]]:
    """Return the candidates the trail can be filtered by."""
    query = select(Candidate.id, User.name).join(User, User.id == Candidate.user_id).order_by(User.name)
    if granted is not None:
        query = query.where(col(Candidate.id).in_(granted))
    return [tuple(r) for r in session.exec(query).all()]


def _chosen(value: str, choices: list[tuple[uuid.UUID, str]]) -> uuid.UUID | None:
    """Return the chosen candidate if it is one of the choices (a forged or unknown id shows everything allowed)."""
    try:
        wanted = uuid.UUID(value)
    except ValueError:
        return None
    return wanted if wanted in {c for c, _ in choices} else None


def when(moment: datetime | None) -> str:
    """Return a moment as people read it, in UTC."""
    return f"{moment:%-d %B %Y, %H:%M:%S} UTC" if moment else ""


bp.add_app_template_filter(when, "when")
