"""The administrator's upload page for a portfolio pack from another centre: verified, then imported once."""
import tempfile

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import login_required

from .. import access
from ..db import get_session
from ..errors import InvalidInput, Refusal
from ..models import Role
from ..services import pack
from .auth import actor, me
from .forms import form_from

bp = Blueprint("transfers", __name__, url_prefix="/admin/packs")


@bp.before_request
@login_required
def _administrators_only() -> None:
    """Let only a signed-in centre administrator import a learner from another centre."""
    access.require(Role.ADMINISTRATOR in me().role_names,
                   "Only the centre administrator can import a portfolio pack.")


@bp.get("/")
def index():  # noqa: ANN201
    """Show the upload form."""
    return render_template("transfers/index.html", form=form_from({}, "pack"))


@bp.post("/")
def upload():  # noqa: ANN201
    """Verify an uploaded pack and import its candidate; any refusal is shown on the form and nothing is stored."""
    session, form = get_session(), form_from({}, "pack")
    upload = request.files.get("pack")
    try:
        if upload is None or not upload.filename:
            raise InvalidInput("Choose the pack (a .zip file) to import.", field="pack")
        with tempfile.TemporaryFile(dir=current_app.instance_path) as spooled:
            upload.save(spooled)
            spooled.seek(0)
            candidate = pack.import_pack(session, current_app.extensions["storage"], actor(), spooled)
            session.commit()
    except Refusal as refusal:
        session.rollback()
        return render_template("transfers/index.html", form=form.refuse(refusal)), 422
    flash(f"Imported {candidate.registration_number}: the pack verified, and every record kept its ids and hashes.",
          "success")
    return redirect(url_for("admin.candidate", candidate_id=candidate.id), 303)
