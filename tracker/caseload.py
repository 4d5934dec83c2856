"""The caseload: the candidates a person works with, and what needs their attention."""
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
    rows, total = portfolio.caseload(get_session(), me())
    return render_template("caseload/index.html", rows=rows, total=total)
