"""A field device's Sync page: what the centre has not yet accepted, why, and what to do; "Sync now"; discard;
conflicts compared side by side and settled by the assessor."""
import uuid

from flask import Blueprint, Flask, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import login_required
from sqlmodel import Session

from sync.device import conflicts, downloads, outbox
from sync.device.client import Client, HttpTransport
from sync.device.field import Syncer, centre_days, load_token, unsent

from ..audit import record
from ..db import get_session
from ..errors import Refusal
from ..models import OutboxItem, SyncState
from .auth import actor
from .extensions import htmx

bp = Blueprint("syncing_device", __name__, url_prefix="/sync")

ADVICE = {
    "observer_not_eligible": "Check the observer's eligibility with the centre; record the observation again once "
                             "it is restored, or ask another eligible assessor to observe.",
    "out_of_date": "Someone changed this evidence at the centre first. Compare the two versions and decide which "
                   "to keep, or merge them.",
    "conflict": "The centre already holds different content under this id. Save your change as a new version.",
    "item_changed": "Save your change as a new item.",
}
DEFAULT_ADVICE = "Read the reason, correct the evidence on this device and record it again, or discard this item."


def init_app(app: Flask) -> None:
    """Queue the device's changes for the centre, register the Sync page and the status on every page, and start
    background sync."""
    outbox.install(app.extensions["engine"])
    app.extensions["centre_days"] = lambda: centre_days(app.extensions["engine"])
    app.register_blueprint(bp)
    app.context_processor(_status)
    app.extensions["syncer"] = syncer = Syncer(lambda: make_client(app),
                                               interval=float(app.config.get("SYNC_INTERVAL", 60)))
    if app.config.get("SYNC_IN_BACKGROUND", True):
        syncer.start()


def make_client(app: Flask) -> Client:
    """Return a client for this device, from the token and centre URL in the instance folder."""
    engine = app.extensions["engine"]
    with Session(engine) as session:
        state = session.get(SyncState, 1)
    server = state.server_url if state else app.config.get("CENTRE_URL") or ""
    transport = app.extensions.get("sync_transport") or HttpTransport(server)
    return Client(engine, app.extensions["storage"], transport, load_token(app.instance_path))


def _status() -> dict:
    """Give every page the device's sync status: items waiting, last success, last error."""
    session = get_session()
    queue = outbox.status(session)
    return {"field_sync": {"state": session.get(SyncState, 1), **queue}}


@bp.get("/")
@login_required
def index():  # noqa: ANN201
    """List every item the centre has not yet accepted, with its state and what to do."""
    items = unsent(current_app.extensions["engine"])
    if htmx and not htmx.boosted and not htmx.history_restore_request:
        return render_template("syncing_device/_items.html", items=items, advice=ADVICE, default_advice=DEFAULT_ADVICE)
    waiting = downloads.missing(get_session(), current_app.extensions["storage"])  # the page alone says it
    return render_template("syncing_device/index.html", title="Sync", items=items, advice=ADVICE,
                           default_advice=DEFAULT_ADVICE, files_note=downloads.waiting_note(len(waiting)))


@bp.post("/now")
@login_required
def now():  # noqa: ANN201
    """Sync at once and say how it went."""
    report = current_app.extensions["syncer"].now()
    if report is None:
        flash("A sync is already running; this page shows its progress when you reload it.", "info")
    elif report.error:
        flash(report.error, "error")
    elif report.parked:
        flash(f"Synced, but {len(report.parked)} item(s) need your attention below. {report.summary()}", "error")
    elif not report.ok:  # held or not yet sent: never "all sent" (G22)
        flash(f"Synced, but not everything is accepted yet. {report.summary()} See the list below.", "error")
    else:
        flash(f"Synced: {report.pushed} item(s) sent, {report.pulled_rows} record(s) received, "
              f"{report.files_downloaded} file(s) downloaded. {report.summary()} {report.files_note}".rstrip(),
              "success")
    if report is not None and report.sent_again:
        flash(f"The centre no longer had {report.sent_again} item(s) it had accepted from this device (it may "
              "have been restored from a backup); they have been sent again.", "info")
    return redirect(url_for("syncing_device.index"), 303)


@bp.post("/items/<item_id>/discard")
@login_required
def discard(item_id: str):  # noqa: ANN201
    """Discard a parked item once confirmed; a copy of it stays in the device's audit log."""
    try:
        key = uuid.UUID(item_id)
    except ValueError:
        abort(404)
    session = get_session()
    item = session.get(OutboxItem, key)
    if item is None or item.state != outbox.PARKED:
        abort(404)
    if request.form.get("confirm") != "yes":
        flash("Tick the box to confirm that you want to discard this item.", "error")
        return redirect(url_for("syncing_device.index"), 303)
    record(session, actor(), "sync.discarded", item, item=str(item.item_id), kind=item.kind, seq=item.seq, code=item.code,
           message=item.message, payload=item.payload)
    item.state = outbox.DISCARDED
    session.add(item)
    session.commit()
    flash("The item was discarded. A copy is kept in this device's audit log.", "success")
    return redirect(url_for("syncing_device.index"), 303)


# --- Conflicts --------------------------------------------------------------------------------------------------


@bp.get("/conflicts/<evidence_id>")
@login_required
def conflict(evidence_id: str):  # noqa: ANN201
    """Show this device's version beside the centre's, with the three ways to settle the conflict."""
    session = get_session()
    found = conflicts.conflict_for(session, evidence_id)
    centre, mine = conflicts.sides(session, found)
    return render_template("syncing_device/conflict.html", title="Resolve a conflict", found=found, centre=centre,
                           mine=mine)


@bp.post("/conflicts/<evidence_id>")
@login_required
def resolve(evidence_id: str):  # noqa: ANN201
    """Settle a conflict as the assessor chose; a merge comes from the merge form's fields."""
    session = get_session()
    choice = request.form.get("choice", "")
    found = conflicts.conflict_for(session, evidence_id)
    content = _merged(found, request.form) if choice == "merged" else None
    try:
        conflicts.resolve(session, actor(), found.evidence.id, choice, content)
        session.commit()
    except Refusal as refusal:
        session.rollback()
        flash(refusal.message, "error")
        return redirect(url_for("syncing_device.conflict", evidence_id=evidence_id), 303)
    flash({"device": "Your version is kept, as a new version on top of the centre's.",
           "centre": "The centre's version is kept; your unsent changes to it were set aside (a copy is in this "
                     "device's audit log).",
           "merged": "Your merge is kept, as a new version on top of the centre's."}[choice] +
          " It goes to the centre at the next sync.", "success")
    return redirect(url_for("syncing_device.index"), 303)


def _merged(found: conflicts.Conflict, form: dict) -> dict:
    """Return this device's content with the fields the assessor edited in the merge form."""
    content = found.mine.model_dump(mode="json")
    for name in ("title", "activity_date", "narrative"):
        if name in form:
            content[name] = form[name]
    return content
