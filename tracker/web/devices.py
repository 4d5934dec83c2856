"""The administrator's view of field devices: who has which, when each was last seen, and withdrawing one."""
import uuid

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required
from sqlmodel import col, select

from sync.centre.tokens import allow_back as allow_token
from sync.centre.tokens import revoke as revoke_token

from .. import access
from ..db import get_session
from ..errors import NotFound, Refusal
from ..models import Device, Role, User
from .auth import actor, me
from .extensions import htmx
from .forms import Form, form_from

bp = Blueprint("devices", __name__, url_prefix="/admin/devices")


@bp.before_request
@login_required
def _administrators_only() -> None:
    """Let only a signed-in centre administrator see and withdraw devices."""
    access.require(Role.ADMINISTRATOR in me().role_names, "Only the centre administrator can manage field devices.")


@bp.get("/")
def index():  # noqa: ANN201
    """List every person's devices; an in-page htmx request gets only the list."""
    return _page(form_from(None))


def _page(form: Form, failed: uuid.UUID | None = None, status: int = 200):  # noqa: ANN202
    rows = get_session().exec(select(Device, User).join(User, col(Device.user_id) == User.id)
                              .order_by(User.name, User.email, col(Device.created_at).desc())).all()
    partial = htmx and not htmx.boosted and not htmx.history_restore_request
    return render_template("devices/_list.html" if partial else "devices/index.html", rows=rows, form=form,
                           failed=failed), status


@bp.post("/<device_id>/revoke")
def revoke(device_id: str):  # noqa: ANN201
    """Withdraw a device's access at once; it stays withdrawn until an administrator allows it back."""
    session = get_session()
    device = _device(device_id)
    field = f"reason-{device.id}"
    form = form_from(request.form, field)
    try:
        revoke_token(session, actor(), device.id, form.get(field))
        session.commit()
    except Refusal as refusal:
        session.rollback()
        form.refuse(refusal, {"reason": field})
        return _page(form, device.id, 422)
    flash(f"Access withdrawn from “{device.name}”. Anything it had not sent stays on it; allow it back here if it "
          "is found.", "success")
    return redirect(url_for("devices.index"), 303)


@bp.post("/<device_id>/allow")
def allow(device_id: str):  # noqa: ANN201
    """Allow a withdrawn device back: its owner signs in again on it and its unsent work goes on."""
    session = get_session()
    device = _device(device_id)
    allow_token(session, actor(), device.id)
    session.commit()
    flash(f"“{device.name}” is allowed back. Its owner signs in again on it; everything it had not sent is then "
          "sent.", "success")
    return redirect(url_for("devices.index"), 303)


def _device(device_id: str) -> Device:
    try:
        device = get_session().get(Device, uuid.UUID(device_id))
    except ValueError:
        device = None
    if device is None:
        raise NotFound("device")
    return device
