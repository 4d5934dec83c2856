"""Conflicts from field devices at the centre: each change kept beside the newer version it ran into, listed for its
assessor and for the administrator, until the assessor settles it on the device (G13)."""
from flask import Blueprint, render_template
from flask_login import login_required

from ..db import get_session
from ..services import conflicts as service
from .auth import me

bp = Blueprint("conflicts", __name__, url_prefix="/conflicts")


@bp.get("/")
@login_required
def index():  # noqa: ANN201
    """List the open conflicts the person may see, each with both versions."""
    rows = service.open_conflicts(get_session(), me())
    return render_template("conflicts/index.html", title="Conflicts from field devices", rows=rows)


@bp.get("/<item_id>")
@login_required
def detail(item_id: str):  # noqa: ANN201
    """Show one conflict: the centre's version and the device's change side by side."""
    row = service.get(get_session(), me(), item_id)
    return render_template("conflicts/detail.html", title=f"Conflict: {row.title}", row=row)
