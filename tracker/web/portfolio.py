"""A candidate's portfolio: the tracking grid of Unit 002's outcomes and criteria, and criterion decisions."""
import io

from flask import Blueprint, current_app, redirect, render_template, request, send_file, url_for
from flask_login import login_required
from sqlmodel import select

from .. import access
from ..db import get_session
from ..errors import NotFound, Refusal
from ..models import Candidate, Role
from ..services import assessment, people, portfolio
from ..services import pack as packs
from .auth import actor, me
from .extensions import htmx

bp = Blueprint("portfolio", __name__)


@bp.get("/portfolio")
@login_required
def mine():  # noqa: ANN201
    """Send a candidate to their own portfolio."""
    own = get_session().exec(select(Candidate).where(Candidate.user_id == me().id)).first()
    if own is None:
        raise NotFound("portfolio")
    return redirect(url_for("portfolio.detail", candidate_id=own.id))


@bp.get("/candidates/<candidate_id>")
@login_required
def detail(candidate_id: str):  # noqa: ANN201
    """Show the portfolio and tracking grid; an in-page htmx request gets just the grid."""
    session = get_session()
    candidate, relation = access.candidate_for(session, me(), candidate_id)
    if not access.sees_portfolio(relation):
        return _limited(candidate, relation)
    return _render(portfolio.portfolio(session, candidate), relation)


def _render(data: portfolio.Portfolio, relation: frozenset[str], error: dict | None = None, status: int = 200):
    """Render the page, or only the grid fragment for an in-page htmx request."""
    context = {"p": data, "relation": relation, "is_candidate": "self" in relation,
               "is_assessor": Role.ASSESSOR in relation, "error": error or {}}
    partial = htmx and not htmx.boosted and not htmx.history_restore_request
    template = "portfolio/_grid.html" if partial else "portfolio/detail.html"
    return render_template(template, **context), status


def _limited(candidate: Candidate, relation: frozenset[str]):  # noqa: ANN202
    """Show a witness or expert witness only the evidence they recorded, and how to add more."""
    data = portfolio.portfolio(get_session(), candidate)
    own = [e for e in data.evidence.values() if e.author_id == me().id]  # by id: two people may share a name
    return render_template("portfolio/limited.html", p=data, own=own, relation=relation)


@bp.post("/candidates/<candidate_id>/criteria/<code>/decision")
@login_required
def decide(candidate_id: str, code: str):  # noqa: ANN201
    """Judge a criterion met or not yet met, on the accepted evidence mapped to it."""
    session = get_session()
    candidate, relation = access.candidate_for(session, me(), candidate_id)
    access.require(Role.ASSESSOR in relation, "Only the candidate's assessor can judge criteria.")
    outcome = request.form.get("outcome", "")
    data = portfolio.portfolio(session, candidate)
    row = next((c for c in data.readiness.criteria if c.code == code), None)
    evidence_ids = [i for ids in (row.evidence.values() if row else []) for i in ids
                    if outcome != "met" or data.evidence[i].status == "accepted"]
    try:
        assessment.decide(session, actor(), candidate.id, "002", code, outcome, evidence_ids,
                          request.form.get("note", ""))
        session.commit()
    except Refusal as refusal:
        session.rollback()
        return _render(data, relation, {"code": code, "message": refusal.message}, 200 if htmx else 422)
    if htmx:
        return _render(portfolio.portfolio(session, candidate), relation)
    return redirect(url_for("portfolio.detail", candidate_id=candidate.id, _anchor=f"c-{code}"), 303)


@bp.get("/candidates/<candidate_id>/pack")
@login_required
def pack(candidate_id: str):  # noqa: ANN201
    """Download the candidate's portfolio pack: for whoever sees the whole portfolio, and the administrator."""
    session, user = get_session(), me()
    if Role.ADMINISTRATOR in user.role_names:
        candidate = people.get_candidate(session, candidate_id)
    else:
        candidate, relation = access.candidate_for(session, user, candidate_id)
        access.require(access.sees_portfolio(relation),
                       "Only the candidate, their assessor and IQA, an inspecting EQA and the centre administrator "
                       "can download the whole portfolio.")
    body = packs.to_bytes(session, current_app.extensions["storage"], candidate,
                          current_app.config.get("CENTRE_NAME", ""))
    return send_file(io.BytesIO(body), mimetype="application/zip", as_attachment=True,
                     download_name=f"portfolio-{candidate.registration_number}.zip")
