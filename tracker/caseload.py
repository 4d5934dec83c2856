"""The caseload: the candidates a person works with, and what needs their attention."""
from datetime import date

from flask import Blueprint, render_template
from flask_login import login_required

from .auth import me
from .db import get_session
from .services import portfolio

bp = Blueprint("caseload", __name__, url_prefix="/caseload")


@bp.get("/")
@login_required
def index():  # noqa: ANN201
    """List the person's candidates with progress, evidence waiting for a decision, and referrals."""
    session = get_session()
    rows, total = portfolio.caseload(session, me())
    return render_template("caseload/index.html", rows=rows, total=total,
                           actions=portfolio.actions_due(session, me()), today=date.today())
