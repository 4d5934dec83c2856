"""The caseload: the candidates a person works with, and what needs their attention."""

from flask import Blueprint, current_app, render_template
from flask_login import login_required

from .. import clock, readcache
from ..db import get_session
from ..services import portfolio
from .auth import me

bp = Blueprint("caseload", __name__, url_prefix="/caseload")


@bp.get("/")
@login_required
def index():  # noqa: ANN201
    """List the person's candidates with progress, evidence waiting for a decision, and referrals."""
    session, user, today = get_session(), me(), clock.today()
    # Any audited change in the centre may move a caseload's counts; until then the page's data stands (for today,
    # since actions fall overdue by the calendar alone).
    rows, total, actions = current_app.extensions["read_cache"].get(
        ("caseload", user.id, today), readcache.centre_stamp(session),
        lambda: (*portfolio.caseload(session, user), portfolio.actions_due(session, user)))
    return render_template("caseload/index.html", rows=rows, total=total, actions=actions, today=today)
