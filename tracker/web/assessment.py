"""Unit sign-off: the assessor's declaration, refused with the reason until the handbook's rules hold."""
from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required

from .. import access
from ..db import get_session
from ..errors import Refusal
from ..models import Role
from ..services import assessment, portfolio
from .auth import actor, me
from .forms import form_from

bp = Blueprint("assessment", __name__)


@bp.route("/candidates/<candidate_id>/sign-off", methods=["GET", "POST"])
@login_required
def sign_off(candidate_id: str):  # noqa: ANN201
    """Show what sign-off needs and sign Unit 002 off with the declaration."""
    session = get_session()
    candidate, relation = access.candidate_for(session, me(), candidate_id)
    access.require(Role.ASSESSOR in relation, "Only the candidate's assessor can sign the unit off.")
    form = form_from(request.form, "declaration")
    if request.method == "POST":
        try:
            assessment.sign_off(session, actor(), candidate.id, "002", form.get("declaration") == "yes")
            session.commit()
            flash("Unit 002 is signed off and locked.", "success")
            return redirect(url_for("portfolio.detail", candidate_id=candidate.id), 303)
        except Refusal as refusal:
            session.rollback()
            form.refuse(refusal)
    data = portfolio.portfolio(session, candidate)
    status = 422 if form.summary else 200
    return render_template("assessment/sign_off.html", p=data, form=form,
                           declaration=assessment.SIGNOFF_DECLARATION), status
