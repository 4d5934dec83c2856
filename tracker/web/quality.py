"""Internal quality assurance pages: strategies, samples, reviews, actions, coverage and the cycle report.

IQAs change their own records; the lead IQA and EQAs read every IQA's, and an EQA is never shown a write control.
"""
from datetime import timedelta

from flask import Blueprint, Response, flash, redirect, render_template, request, url_for
from flask_login import login_required
from sqlmodel import select

from .. import access, clock
from ..db import get_session
from ..errors import NotFound, Refusal
from ..models import Role, Sample, SampleItem, SamplingStrategy
from ..services import quality
from .auth import actor, me
from .extensions import htmx
from .forms import form_from

bp = Blueprint("quality", __name__, url_prefix="/quality")
READERS = (Role.IQA, Role.EQA)


def _reader() -> None:
    """Refuse anyone who is neither an IQA nor an EQA."""
    access.require(bool(me().role_names & set(READERS)), "Only an IQA or an EQA can see quality assurance.")


def _writer() -> None:
    """Refuse anyone but an IQA."""
    access.require(Role.IQA in me().role_names, "Only an IQA can change quality assurance records.")


def _writes(strategy: SamplingStrategy) -> bool:
    return strategy.iqa_id == me().id and Role.IQA in me().role_names


@bp.get("/")
@login_required
def index():  # noqa: ANN201
    """List the strategies a person may read, and the actions they raised or oversee."""
    _reader()
    session = get_session()
    return render_template("quality/index.html", strategies=quality.strategies(session, me()),
                           actions=quality.actions(session, me(), open_only=True), today=clock.today(),
                           can_write=Role.IQA in me().role_names, lead=quality.is_lead(session, me().id))


@bp.route("/strategies/new", methods=["GET", "POST"])
@login_required
def new_strategy():  # noqa: ANN201
    """Show and take the strategy form, with the centre's default rates filled in."""
    _writer()
    session = get_session()
    today = clock.today()
    defaults = {"kind": "interim", "cycle_start": today.replace(day=1).isoformat(),
                "cycle_end": (today + timedelta(days=90)).isoformat()}
    form = form_from(request.form if request.method == "POST" else {**defaults, **quality.DEFAULTS}, "name",
                     "kind", "cycle_start", "cycle_end", "cohort", "new_sites", *quality.DEFAULTS)
    if request.method == "POST":
        try:
            data = dict(request.form.items()) | {"cohort": request.form.getlist("cohort")}
            row = quality.create_strategy(session, actor(), data)
            session.commit()
            flash(f"Strategy “{row.name}” saved. Draw a sample when you are ready.", "success")
            return redirect(url_for("quality.strategy", strategy_id=row.id), 303)
        except Refusal as refusal:
            session.rollback()
            form.refuse(refusal)
    return render_template("quality/strategy_form.html", form=form,
                           candidates=quality.my_candidates(session, me().id)), 422 if form.summary else 200


@bp.get("/strategies/<strategy_id>")
@login_required
def strategy(strategy_id: str):  # noqa: ANN201
    """Show the plan: the strategy, its samples, and the decisions the independence guard keeps from its IQA."""
    _reader()
    session = get_session()
    row = quality.strategy_for(session, me(), strategy_id)
    return _plan(row, form_from({"seed": request.args.get("seed", "")}, "seed"))


def _plan(row: SamplingStrategy, form, status: int = 200):  # noqa: ANN001, ANN202
    session = get_session()
    samples = session.exec(select(Sample).where(Sample.strategy_id == row.id).order_by(Sample.drawn_at,
                                                                                      Sample.id)).all()
    pop = quality.population(session, row, quality.scope(session, me()))
    return render_template("quality/strategy.html", s=row, samples=samples, pop=pop, form=form,
                           can_write=_writes(row)), status


@bp.post("/strategies/<strategy_id>/draw")
@login_required
def draw(strategy_id: str):  # noqa: ANN201
    """Draw a seeded sample."""
    _writer()
    session = get_session()
    row = quality.own_strategy(session, actor(), strategy_id)
    form = form_from(request.form, "seed")
    try:
        sample = quality.draw(session, actor(), row.id, request.form.get("seed", ""))
        session.commit()
        flash(f"Sample drawn with seed {sample.seed}.", "success")
        return redirect(url_for("quality.sample", sample_id=sample.id), 303)
    except Refusal as refusal:
        session.rollback()
        return _plan(row, form.refuse(refusal), 422)


@bp.get("/strategies/<strategy_id>/coverage")
@login_required
def coverage(strategy_id: str):  # noqa: ANN201
    """Show the coverage matrix: per assessor, methods × criteria and sites, sampled or not this cycle."""
    _reader()
    session = get_session()
    row = quality.strategy_for(session, me(), strategy_id)
    return render_template("quality/coverage.html", s=row, m=quality.coverage(session, row, quality.scope(session, me())))


@bp.get("/samples/<sample_id>")
@login_required
def sample(sample_id: str):  # noqa: ANN201
    """List a sample's items and why each was chosen; the IQA can add one by hand."""
    _reader()
    session = get_session()
    found, row = quality.sample_for(session, me(), sample_id)
    return _sample(found, row, form_from({}, "decision", "reason"))


def _sample(found: Sample, row: SamplingStrategy, form, status: int = 200):  # noqa: ANN001, ANN202
    session = get_session()
    pop = quality.population(session, row) if _writes(row) else None
    items = quality.items_of(session, found, quality.scope(session, me()))
    return render_template("quality/sample.html", sample=found, s=row, items=items,
                           pop=pop, form=form, can_write=_writes(row)), status


@bp.post("/samples/<sample_id>/items")
@login_required
def add_item(sample_id: str):  # noqa: ANN201
    """Add a decision to the sample by hand, with the reason."""
    _writer()
    session = get_session()
    found, row = quality.sample_for(session, me(), sample_id)
    if row.iqa_id != me().id:
        raise NotFound("sample")
    form = form_from(request.form, "decision", "reason")
    try:
        quality.add_item(session, actor(), found.id, request.form.get("decision", ""), request.form.get("reason", ""))
        session.commit()
        flash("Decision added to the sample.", "success")
        return redirect(url_for("quality.sample", sample_id=found.id), 303)
    except Refusal as refusal:
        session.rollback()
        return _sample(found, row, form.refuse(refusal), 422)


@bp.route("/items/<item_id>", methods=["GET", "POST"])
@login_required
def item(item_id: str):  # noqa: ANN201
    """Show a sampled decision or sign-off with what it rests on; the IQA records a verdict (htmx: the review only)."""
    _reader()
    session = get_session()
    found, row = quality.item_for(session, me(), item_id)
    form = form_from(request.form, "verdict", "reasons", "practice_feedback", "action", "due_on")
    recorded = False
    if request.method == "POST":
        _writer()
        if row.iqa_id != me().id:
            raise NotFound("sampled item")
        try:
            quality.review(session, actor(), found.id, request.form.get("verdict", ""),
                           request.form.get("reasons", ""), request.form.get("practice_feedback", ""),
                           request.form.get("action", ""), request.form.get("due_on", ""))
            session.commit()
            if not _partial():
                flash("Review recorded.", "success")
                return redirect(url_for("quality.item", item_id=found.id), 303)
            recorded = True
        except Refusal as refusal:
            session.rollback()
            form.refuse(refusal)
    return _item(found, row, form, recorded)


def _partial() -> bool:
    """Say whether the request is an in-page htmx request (boosted and history-restore requests get pages)."""
    return bool(htmx and not htmx.boosted and not htmx.history_restore_request)


def _item(found: SampleItem, row: SamplingStrategy, form, recorded: bool):  # noqa: ANN001, ANN202
    """Render the review page of a decision or a sign-off, or only its review section for htmx."""
    detail = quality.item_detail(get_session(), found)
    if _partial():
        template, status = "quality/_review.html", 200
    else:
        template = "quality/item.html" if found.decision_id else "quality/signoff.html"
        status = 422 if form.summary else 200
    return render_template(template, d=detail, s=row, form=form, can_write=_writes(row), today=clock.today(),
                           recorded=recorded), status


@bp.get("/actions")
@login_required
def actions():  # noqa: ANN201
    """List the actions a person must answer or raised (every open one for the lead IQA)."""
    session = get_session()
    rows = quality.actions(session, me())
    return render_template("quality/actions.html", rows=rows, today=clock.today(), me=me(),
                           form=form_from({}, "response", "reopen"))


@bp.post("/actions/<action_id>/respond")
@login_required
def respond(action_id: str):  # noqa: ANN201
    """The assessor answers an action, and may reopen the decision or signed-off unit it concerns."""
    access.require(Role.ASSESSOR in me().role_names, "Only the assessor the action is for can answer it.")
    session = get_session()
    try:
        quality.respond(session, actor(), action_id, request.form.get("response", ""),
                        request.form.get("reopen") == "yes")
        session.commit()
        flash("Your answer is recorded; the IQA will close the action.", "success")
    except Refusal as refusal:
        session.rollback()
        if refusal.kind in ("forbidden", "not_found"):
            raise
        form = form_from(request.form, "response", "reopen").refuse(refusal)
        return render_template("quality/actions.html", rows=quality.actions(session, me()), today=clock.today(),
                               me=me(), form=form, failed=action_id), 422
    return redirect(url_for("quality.actions"), 303)


@bp.post("/actions/<action_id>/close")
@login_required
def close(action_id: str):  # noqa: ANN201
    """The IQA closes an answered action."""
    _writer()
    session = get_session()
    try:
        quality.close(session, actor(), action_id)
        session.commit()
        flash("Action closed.", "success")
    except Refusal as refusal:
        session.rollback()
        if refusal.kind in ("forbidden", "not_found"):
            raise
        flash(refusal.message, "error")
        return render_template("quality/actions.html", rows=quality.actions(session, me()), today=clock.today(),
                               me=me(), form=form_from({}, "response", "reopen")), 422
    return redirect(url_for("quality.actions"), 303)


@bp.get("/reports/<iqa_id>")
@login_required
def report(iqa_id: str):  # noqa: ANN201
    """Show an IQA's cycle report: their own, or any IQA's for an EQA or the lead IQA."""
    _reader()
    rep, who = _report(iqa_id)
    return render_template("quality/report.html", r=rep, who=who, today=clock.today())


@bp.get("/reports/<iqa_id>.pdf")
@login_required
def report_pdf(iqa_id: str):  # noqa: ANN201
    """Download an IQA's cycle report as a PDF."""
    _reader()
    rep, who = _report(iqa_id)
    return Response(quality.report_pdf(rep, clock.today()), mimetype="application/pdf", headers={
        "Content-Disposition": f'attachment; filename="iqa-cycle-report-{who.id}.pdf"'})


def _report(iqa_id: str):  # noqa: ANN202
    session = get_session()
    if iqa_id != str(me().id) and not (Role.EQA in me().role_names or quality.is_lead(session, me().id)):
        raise NotFound("IQA")
    who = quality.users_by_id(session, iqa_id)
    return quality.report(session, who, me()), who

