"""The page each person lands on after signing in: where to go for each of their roles."""
from flask import Blueprint, render_template
from flask_login import login_required
from sqlmodel import select

from ..db import get_session
from ..models import Candidate
from ..services import conflicts, portfolio
from .auth import me

bp = Blueprint("home", __name__)


@bp.get("/")
@login_required
def index():  # noqa: ANN201
    """Show the signed-in person a summary and a way in for each role they hold."""
    session, user = get_session(), me()
    own = session.exec(select(Candidate).where(Candidate.user_id == user.id)).first()
    mine = portfolio.portfolio(session, own) if own else None
    rows, total = portfolio.caseload(session, user)
    return render_template("home/index.html", user=user, roles=user.role_names, mine=mine, rows=rows, total=total,
                           conflicts=conflicts.open_count(session, user))
