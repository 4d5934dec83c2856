"""The administrator's page for inspection access: grant an EQA time-limited, read-only access, or withdraw it."""
import uuid
from datetime import UTC, datetime, timedelta

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required
from sqlmodel import select

from .. import access
from ..clock import now
from ..db import get_session
from ..errors import InvalidInput, Refusal
from ..models import Candidate, Role, RoleGrant, User
from ..services import eqa
from .auth import actor, me
from .forms import Form, form_from

bp = Blueprint("grants", __name__, url_prefix="/admin/eqa-access")
FIELDS = ("eqa_id", "candidate_ids", "starts_at", "ends_at", "reason")
LABELS = {"starts_at": "when the access starts", "ends_at": "when the access ends"}


@bp.before_request
@login_required
def _administrators_only() -> None:
    """Let only a signed-in centre administrator grant or withdraw inspection access."""
    access.require(Role.ADMINISTRATOR in me().role_names, "Only the centre administrator can grant inspection access.")


@bp.get("/")
def index():  # noqa: ANN201
    """List grants, in force or not, and offer the form for a new one."""
    start = now().replace(second=0, microsecond=0)
    return _page(form_from({"starts_at": _local(start), "ends_at": _local(start + timedelta(days=14))}, *FIELDS))


@bp.post("/")
def create():  # noqa: ANN201
    """Grant access from the form; a refusal is shown beside its field and nothing is stored."""
    session = get_session()
    form = form_from(request.form, *FIELDS)
    try:
        data = {"eqa_id": _id(form.get("eqa_id"), "eqa_id", "Choose the EQA to grant access to."),
                "candidate_ids": [_id(c, "candidate_ids", "One of the chosen candidates is not registered at "
                                                          "this centre.") for c in form.getlist("candidate_ids")],
                "starts_at": _moment(form.get("starts_at"), "starts_at"),
                "ends_at": _moment(form.get("ends_at"), "ends_at"), "reason": form.get("reason")}
        if not data["candidate_ids"]:
            raise InvalidInput("Choose at least one candidate.", field="candidate_ids")
        eqa.grant(session, actor(), data)
        session.commit()
    except Refusal as refusal:
        session.rollback()
        return _page(form.refuse(refusal), 422)
    flash("Inspection access granted.", "success")
    return redirect(url_for("grants.index"), 303)


@bp.post("/<grant_id>/revoke")
def revoke(grant_id: str):  # noqa: ANN201
    """Withdraw a grant now."""
    session = get_session()
    try:
        eqa.revoke(session, actor(), grant_id, request.form.get("reason", ""), now())
        session.commit()
    except InvalidInput as refusal:
        session.rollback()
        flash(refusal.message, "error")
        return redirect(url_for("grants.index"), 303)
    flash("Inspection access withdrawn.", "success")
    return redirect(url_for("grants.index"), 303)


def _page(form: Form, status: int = 200):  # noqa: ANN202
    session = get_session()
    eqas = session.exec(select(User).join(RoleGrant, RoleGrant.user_id == User.id).where(
        RoleGrant.role == Role.EQA).order_by(User.name)).all()
    candidates = session.exec(select(Candidate.id, User.name).join(User, User.id == Candidate.user_id)
                              .order_by(User.name)).all()
    return render_template("grants/index.html", form=form, eqas=eqas, candidates=candidates,
                           grants=eqa.grants(session), now=now(), active=eqa.active), status


def _id(value: str, field: str, message: str) -> uuid.UUID:
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise InvalidInput(message, field=field) from None


def _moment(value: str, field: str) -> datetime:
    """Read a date-and-time field (as a browser sends it, in UTC)."""
    try:
        return datetime.fromisoformat(value).replace(tzinfo=UTC) if value else _missing(field)
    except ValueError:
        raise InvalidInput(f"Enter {LABELS[field]} as a date and time, like 2026-11-24T09:00.", field=field) from None


def _missing(field: str) -> datetime:
    raise InvalidInput(f"Enter {LABELS[field]}.", field=field)


def _local(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M")
