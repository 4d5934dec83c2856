"""The centre administrator's pages: people, their roles and credentials, expert witnesses, candidates."""
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import login_required
from sqlmodel import Session, col, select

from .. import access, rules
from ..db import get_session
from ..errors import InvalidInput, NotFound, Refusal
from ..models import (
    Candidate,
    CandidateAssignment,
    IqaQualification,
    Qualification,
    QualificationUnit,
    Role,
    RoleGrant,
    SpecPack,
    Unit,
    User,
)
from ..services import people as service
from ..services import quality
from .auth import actor, me
from .extensions import htmx
from .forms import Form, form_from

bp = Blueprint("admin", __name__, url_prefix="/admin")

DEFAULT_QUALIFICATION = "3085-02"
ROLE_LABELS = {
    Role.ADMINISTRATOR: "Centre administrator", Role.ASSESSOR: "Assessor", Role.IQA: "Internal quality assurer (IQA)",
    Role.EXPERT_WITNESS: "Expert witness", Role.WITNESS: "Witness", Role.CANDIDATE: "Candidate",
    Role.EQA: "External quality assurer (EQA)",
}
ROLE_WORDS = {Role.ADMINISTRATOR: "centre administrator", Role.ASSESSOR: "assessor", Role.IQA: "IQA",
              Role.EXPERT_WITNESS: "expert witness", Role.WITNESS: "witness", Role.CANDIDATE: "candidate",
              Role.EQA: "EQA"}  # the roles as they read inside a sentence
GRANTABLE = tuple(r for r in ROLE_LABELS if r != Role.CANDIDATE)  # registering someone makes them a candidate
PERSON_FIELDS = ("name", "email", "password", "roles")
CANDIDATE_FIELDS = ("person", "new_name", "new_email", "registration_number", "date_of_birth", "registration_date",
                    "qualification", "workplace", "work_setting", "assessors", "iqas")
# Where the services' field names appear on the registration form.
CANDIDATE_MAP = {"user_id": "person", "name": "new_name", "email": "new_email", "assessor_ids": "assessors",
                 "assessor": "assessors", "iqa_ids": "iqas"}
# The person page's forms: the prefix that keeps their field ids unique on the page, and the services' names.
SUBFORMS = {
    "role": ("", ("role",)),
    "qualification": ("q_", ("qualification_code", "awarded_on", "verified_on")),
    "competence": ("c_", ("level", "area", "evidence", "verified_on")),
    "expert_witness": ("ew_", ("working_knowledge", "occupational_competence", "assessment_qualification",
                               "evaluating_role", "approved_on")),
    "iqa": ("iqa_", ("qualification_code", "awarded_on", "verified_on")),
    "lead": ("", ("lead",)),
    "account": ("account_", ("reason",)),
}
DATE_LABELS = {"date_of_birth": "the date of birth", "registration_date": "the registration date",
               "verified_on": "the date the centre verified it", "awarded_on": "the date it was awarded",
               "approved_on": "the date of approval", "withdrawn_on": "the date it stops counting"}
WITHDRAWN_SECTION = {"assessor_qualification": "qualification", "competence": "competence",
                     "expert_witness_approval": "expert_witness"}  # where each kind of record sits on the page
# Plain words for input a pattern refused, where the validator's own message would show a regular expression.
PLAIN = {"email": "Enter an email address, like sam.patel@example.org.",
         "level": "Choose whether they are occupationally competent or knowledgeable."}


@bp.before_request
@login_required
def _administrators_only() -> None:
    """Let only a signed-in centre administrator use these pages."""
    access.require(Role.ADMINISTRATOR in me().role_names,
                   "Only the centre administrator can manage people, credentials and candidates.")


# --- People -------------------------------------------------------------------------------------------------


@bp.get("/people")
def people():  # noqa: ANN201
    """List everyone with their roles and what they may do today; an in-page htmx request gets only the list."""
    session = get_session()
    role = request.args.get("role", "")
    role = role if role in {r.value for r in Role} else ""
    query = select(User).order_by(User.name, User.email)
    if role:
        query = query.join(RoleGrant, RoleGrant.user_id == User.id).where(RoleGrant.role == role)
    users = session.exec(query).all()
    units, creds = _units(session), service.credentials(session, [u.id for u in users])
    rows = [(u, creds[u.id], _standing(creds[u.id], units)) for u in users]
    partial = htmx and not htmx.boosted and not htmx.history_restore_request
    return render_template("admin/_people.html" if partial else "admin/people.html", rows=rows, role=role,
                           roles=ROLE_LABELS)


@bp.route("/people/new", methods=["GET", "POST"])
def create_person():  # noqa: ANN201
    """Add a person with their roles; without a password they cannot sign in (a witness, say)."""
    form = form_from(request.form, *PERSON_FIELDS)
    if request.method == "POST":
        session = get_session()
        try:
            user = service.create_user(session, actor(), {
                "name": form.get("name"), "email": form.get("email"), "password": form.get("password") or None,
                "roles": form.getlist("roles")})
            session.commit()
        except Refusal as refusal:
            return _person_form(_refuse(form, refusal), 422)
        flash(f"Added {user.name}.", "success")
        return redirect(url_for("admin.person", user_id=user.id), 303)
    return _person_form(form)


def _person_form(form: Form, status: int = 200):  # noqa: ANN202
    """Render the new-person form; a password is never sent back to the browser."""
    typed_password = bool(form.values.pop("password", None))
    return render_template("admin/person_form.html", form=form, roles=[(r.value, ROLE_LABELS[r]) for r in GRANTABLE],
                           typed_password=typed_password), status


@bp.get("/people/<user_id>")
def person(user_id: str):  # noqa: ANN201
    """Show a person's roles, credentials, approvals and candidates, with a form for each."""
    session = get_session()
    return _person_page(session, service.get_user(session, user_id))


@bp.post("/people/<user_id>/roles")
def add_role(user_id: str):  # noqa: ANN201
    """Give the person another role."""
    def do(session: Session, user: User, data: dict) -> None:
        _need(data, role="Choose the role to give them.")
        if data["role"] not in GRANTABLE:
            raise InvalidInput("Choose one of the roles listed. A person becomes a candidate by registering them.",
                               field="role")
        service.grant_role(session, actor(), user, data["role"])

    return _person_post(user_id, "role", do, "Role added.")


@bp.post("/people/<user_id>/qualifications")
def add_qualification(user_id: str):  # noqa: ANN201
    """Record an assessor qualification the centre has verified."""
    def do(session: Session, user: User, data: dict) -> None:
        _need(data, qualification_code="Choose the qualification.")
        data = _dated(data, "verified_on", optional=("awarded_on",))
        service.add_assessor_qualification(session, actor(), data | {"user_id": user.id})

    return _person_post(user_id, "qualification", do, "Assessor qualification recorded.")


@bp.post("/people/<user_id>/competence")
def add_competence(user_id: str):  # noqa: ANN201
    """Record the person's occupational competence or knowledge, as the centre verified it."""
    def do(session: Session, user: User, data: dict) -> None:
        _need(data, level=PLAIN["level"], area="Say in which area, for example “Adult social care”.",
              evidence="Say what shows it, for example their job role and years of practice.")
        service.record_competence(session, actor(), _dated(data, "verified_on") | {"user_id": user.id})

    return _person_post(user_id, "competence", do, "Occupational competence recorded.")


@bp.post("/people/<user_id>/expert-witness")
def approve_expert_witness(user_id: str):  # noqa: ANN201
    """Approve the person as an expert witness, with the handbook's three conditions recorded."""
    def do(session: Session, user: User, data: dict) -> None:
        data = _dated(data, "approved_on")
        service.approve_expert_witness(session, actor(), data | {
            "user_id": user.id, "assessment_qualification": data["assessment_qualification"] or None,
            "evaluating_role": data["evaluating_role"] or None})

    return _person_post(user_id, "expert_witness", do, "Approved as an expert witness.", _mark_missing)


def _mark_missing(form: Form, refusal: Refusal) -> None:
    """Flag every missing expert witness condition, not only the first one the rule names."""
    if refusal.code != "expert_witness_not_eligible":
        return
    typed = {n: form.get(f"ew_{n}").strip() for n in SUBFORMS["expert_witness"][1]}
    missing = {"ew_working_knowledge": not typed["working_knowledge"],
               "ew_occupational_competence": not typed["occupational_competence"],
               "ew_assessment_qualification": not (typed["assessment_qualification"] or typed["evaluating_role"])}
    for name in (n for n, gap in missing.items() if gap):
        form.errors.setdefault(name, "This condition is missing too: record it to approve them.")


@bp.post("/people/<user_id>/iqa-qualifications")
def add_iqa_qualification(user_id: str):  # noqa: ANN201
    """Record an internal quality assurance qualification."""
    def do(session: Session, user: User, data: dict) -> None:
        _need(data, qualification_code="Choose the qualification.")
        data = _dated(data, "verified_on", optional=("awarded_on",))
        service.add_iqa_qualification(session, actor(), user.id, data["qualification_code"], data["awarded_on"],
                                      data["verified_on"])

    return _person_post(user_id, "iqa", do, "IQA qualification recorded.")


@bp.post("/people/<user_id>/lead-iqa")
def set_lead_iqa(user_id: str):  # noqa: ANN201
    """Make an IQA the lead IQA, who sees every overdue action, or stop them being lead."""
    def do(session: Session, user: User, data: dict) -> None:
        if data["lead"] not in ("yes", "no"):
            raise InvalidInput("Choose whether they are the lead IQA.", field="lead")
        quality.set_lead(session, actor(), user, data["lead"] == "yes")

    return _person_post(user_id, "lead", do, "Lead IQA updated.")


@bp.post("/people/<user_id>/close")
def deactivate(user_id: str):  # noqa: ANN201
    """Close a person's account: no more sign-in, and every session and field device of theirs ends now."""
    def do(session: Session, user: User, data: dict) -> None:
        service.deactivate(session, actor(), user, data["reason"])

    return _person_post(user_id, "account", do, "Account closed. They have been signed out everywhere.")


@bp.post("/people/<user_id>/reopen")
def reactivate(user_id: str):  # noqa: ANN201
    """Open a closed account again."""
    return _person_post(user_id, "account", lambda session, user, data: service.reactivate(session, actor(), user),
                        "Account open again. They sign in with their password.")


@bp.post("/people/<user_id>/withdraw/<kind>/<record_id>")
def withdraw(user_id: str, kind: str, record_id: str):  # noqa: ANN201
    """Withdraw a credential or approval from a date, keeping the record and the reason."""
    session = get_session()
    user = service.get_user(session, user_id)
    row = _record_of(session, user, kind, record_id)
    reason, on = f"reason-{row.id}", f"withdrawn_on-{row.id}"
    form = form_from(request.form, reason, on)
    try:
        day = _date(form.get(on), "withdrawn_on", required=False) or actor().today
        service.withdraw(session, actor(), kind, row.id, day, form.get(reason))
        session.commit()
    except Refusal as refusal:
        return _person_page(session, user, {"withdraw": _refuse(form, refusal, {"reason": reason,
                                                                                "withdrawn_on": on})}, 422)
    flash("Withdrawn. The record stays, marked with the date and the reason.", "success")
    return redirect(url_for("admin.person", user_id=user.id, _anchor=f"{WITHDRAWN_SECTION[kind]}-section"), 303)


def _person_post(user_id: str, key: str, do: Callable[[Session, User, dict], None], success: str,
                 also: Callable[[Form, Refusal], None] | None = None):  # noqa: ANN202
    """Run one of the person page's forms; on refusal show the page again with the message beside its field."""
    session = get_session()
    user = service.get_user(session, user_id)
    prefix, names = SUBFORMS[key]
    form = form_from(request.form, *(prefix + n for n in names))
    try:
        do(session, user, {n: form.get(prefix + n).strip() for n in names})
        session.commit()
    except Refusal as refusal:
        _refuse(form, refusal, {n: prefix + n for n in names})
        if also:
            also(form, refusal)
        return _person_page(session, user, {key: form}, 422)
    flash(success, "success")
    return redirect(url_for("admin.person", user_id=user.id, _anchor=f"{key}-section"), 303)


def _person_page(session: Session, user: User, failed: dict[str, Form] | None = None,
                 status: int = 200):  # noqa: ANN202
    """Render the person page, with the refused form (if any) still showing what was typed."""
    creds = service.credentials(session, [user.id])[user.id]
    iqa = session.exec(select(IqaQualification).where(IqaQualification.user_id == user.id)
                       .order_by(IqaQualification.verified_on)).all()
    attached = session.exec(select(CandidateAssignment, Candidate, User)
                            .join(Candidate, Candidate.id == CandidateAssignment.candidate_id)
                            .join(User, User.id == Candidate.user_id)
                            .where(CandidateAssignment.user_id == user.id).order_by(User.name)).all()
    deciders = [r.verified_by_id for r in [*creds.qualifications, *creds.competences, *iqa]]
    names = _names(session, deciders + [a.approved_by_id for a in creds.approvals])
    forms = {key: _blank(key, actor().today) for key in [*SUBFORMS, "withdraw"]} | (failed or {})
    return render_template(
        "admin/person.html", user=user, creds=creds, iqa=iqa, attached=attached, names=names, forms=forms,
        problem=next(iter((failed or {}).values()), None), standing=_standing(creds, _units(session)),
        lists=_pack_lists(session), roles=ROLE_LABELS, words=ROLE_WORDS,
        grantable=[(r.value, ROLE_LABELS[r]) for r in GRANTABLE if r not in creds.roles],
        own=session.exec(select(Candidate).where(Candidate.user_id == user.id)).first()), status


def _blank(key: str, today: date) -> Form:
    """Start one of the person page's forms, dated today where a date is required."""
    prefix, names = SUBFORMS.get(key, ("", ()))
    return form_from({prefix + n: today.isoformat() for n in names if n in ("verified_on", "approved_on")},
                     *(prefix + n for n in names))


def _record_of(session: Session, user: User, kind: str, record_id: str):  # noqa: ANN202
    """Return this person's credential or approval of a kind, or 'not found'."""
    model = service.WITHDRAWABLE.get(kind)
    try:
        row = session.get(model, uuid.UUID(record_id)) if model else None
    except ValueError:
        row = None
    if row is None or row.user_id != user.id:
        raise NotFound(kind.replace("_", " "))
    return row


# --- Candidates ---------------------------------------------------------------------------------------------


@bp.get("/candidates")
def candidates():  # noqa: ANN201
    """List registered candidates with their assessors and IQAs."""
    session = get_session()
    rows = session.exec(select(Candidate, User, Qualification).join(User, User.id == Candidate.user_id)
                        .join(Qualification, Qualification.id == Candidate.qualification_id)
                        .order_by(User.name)).all()
    staff = _attached(session, [c.id for c, _, _ in rows])
    return render_template("admin/candidates.html", rows=rows, staff=staff, roles=ROLE_LABELS)


@bp.route("/candidates/new", methods=["GET", "POST"])
def register():  # noqa: ANN201
    """Register a candidate: an existing person or a new one, with their assessors and IQAs."""
    session = get_session()
    if request.method == "GET":
        return _register_page(session, form_from({"qualification": DEFAULT_QUALIFICATION, "registration_date":
                                                  actor().today.isoformat()}, *CANDIDATE_FIELDS))
    form = form_from(request.form, *CANDIDATE_FIELDS)
    try:
        candidate = service.register_candidate(session, actor(), _registration(session, form))
        session.commit()
    except Refusal as refusal:
        return _register_page(session, _refuse(form, refusal, CANDIDATE_MAP), 422)
    flash(f"Registered {service.candidate_name(session, candidate)} ({candidate.registration_number}).", "success")
    return redirect(url_for("admin.candidate", candidate_id=candidate.id), 303)


def _registration(session: Session, form: Form) -> dict:
    """Turn the registration form into the service's input, adding the new person first if one is named."""
    return {"user_id": _candidate_person(session, form), "qualification": form.get("qualification"),
            "registration_number": form.get("registration_number"),
            "date_of_birth": _date(form.get("date_of_birth"), "date_of_birth"),
            "registration_date": _date(form.get("registration_date"), "registration_date"),
            "workplace": form.get("workplace"), "work_setting": form.get("work_setting"),
            "assessor_ids": form.getlist("assessors"), "iqa_ids": form.getlist("iqas")}


def _candidate_person(session: Session, form: Form) -> str | uuid.UUID:
    """Return the chosen person's id, or create the new person named on the form (who has no password yet)."""
    new = form.get("new_name").strip() or form.get("new_email").strip()
    if form.get("person") and new:
        raise InvalidInput("Either choose someone already here or give a new person's name and email address, "
                           "not both.", field="person")
    if form.get("person"):
        return form.get("person")
    if not new:
        raise InvalidInput("Choose the person to register, or give the name and email address of someone new.",
                           field="person")
    return service.create_user(session, actor(), {"name": form.get("new_name"), "email": form.get("new_email")}).id


def _register_page(session: Session, form: Form, status: int = 200):  # noqa: ANN202
    """Render the registration form with the people, qualifications, settings and staff to choose from."""
    free = session.exec(select(User).where(col(User.id).not_in(select(Candidate.user_id)))
                        .order_by(User.name)).all()
    staff = session.exec(select(User, RoleGrant.role).join(RoleGrant, RoleGrant.user_id == User.id)
                         .where(col(RoleGrant.role).in_([Role.ASSESSOR, Role.IQA])).order_by(User.name)).all()
    units = _units(session)
    creds = service.credentials(session, [u.id for u, r in staff if r == Role.ASSESSOR])
    assessors = [(u.id, _assessor_label(u, _standing(creds[u.id], units))) for u, r in staff if r == Role.ASSESSOR]
    settings = {s.code: s.label for u in session.exec(select(Unit)) for s in u.strategy.settings}
    return render_template(
        "admin/register.html", form=form, people=[(u.id, f"{u.name} ({u.email})") for u in free],
        qualifications=[(q.code, f"{q.code} {q.title}") for q in session.exec(select(Qualification)
                                                                               .order_by(Qualification.code))],
        settings=[*settings.items(), ("other", "Another real work setting")], assessors=assessors,
        iqas=[(u.id, u.name) for u, r in staff if r == Role.IQA]), status


def _assessor_label(user: User, standing: dict) -> str:
    """Name an assessor with the units they may assess today."""
    may = [code for code, e in standing["units"] if e.eligible]
    return f"{user.name}: " + (f"may assess Unit {' and '.join(may)}" if may else "not eligible for any unit yet")


@bp.get("/candidates/<candidate_id>")
def candidate(candidate_id: str):  # noqa: ANN201
    """Show a candidate's registration and the people attached to them, with a form to attach someone."""
    session = get_session()
    return _candidate_page(session, service.get_candidate(session, candidate_id), form_from(None, "person", "role"))


@bp.post("/candidates/<candidate_id>/assign")
def assign(candidate_id: str):  # noqa: ANN201
    """Attach a person to the candidate as assessor, IQA, expert witness or witness."""
    session = get_session()
    candidate = service.get_candidate(session, candidate_id)
    form = form_from(request.form, "person", "role")
    try:
        _need(form.values, person="Choose the person to attach.", role="Choose the role they have for the candidate.")
        person = service.get_user(session, form.get("person"))
        service.assign(session, actor(), candidate, person, form.get("role"))
        session.commit()
    except Refusal as refusal:
        return _candidate_page(session, candidate, _refuse(form, refusal, {"user_id": "person",
                                                                            "assessor": "person"}), 422)
    flash(f"{person.name} is now attached as {ROLE_WORDS[Role(form.get('role'))]}.", "success")
    return redirect(url_for("admin.candidate", candidate_id=candidate.id), 303)


@bp.post("/candidates/<candidate_id>/unassign/<assignment_id>")
def unassign(candidate_id: str, assignment_id: str):  # noqa: ANN201
    """End a person's assignment to the candidate from today, keeping the record of it."""
    session = get_session()
    candidate = service.get_candidate(session, candidate_id)
    row = service.end_assignment(session, actor(), candidate, assignment_id)
    session.commit()
    flash(f"{service.get_user(session, row.user_id).name} is no longer attached as "
          f"{ROLE_WORDS[Role(row.role)]}.", "success")
    return redirect(url_for("admin.candidate", candidate_id=candidate.id), 303)


def _candidate_page(session: Session, candidate: Candidate, form: Form, status: int = 200):  # noqa: ANN202
    """Render a candidate's registration, everyone ever attached to them, and the form to attach someone."""
    rows = session.exec(select(CandidateAssignment, User).join(User, User.id == CandidateAssignment.user_id)
                        .where(CandidateAssignment.candidate_id == candidate.id)
                        .order_by(col(CandidateAssignment.ended_on).is_not(None), User.name)).all()
    staff = session.exec(select(User, RoleGrant.role).join(RoleGrant, RoleGrant.user_id == User.id)
                         .where(col(RoleGrant.role).in_(service.ASSIGNABLE)).order_by(User.name)).all()
    held: dict[uuid.UUID, list[str]] = defaultdict(list)
    for user, role in staff:
        held[user.id].append(ROLE_WORDS[Role(role)])
    people_options = {u.id: f"{u.name} ({', '.join(held[u.id])})" for u, _ in staff}
    return render_template(
        "admin/candidate.html", candidate=candidate, name=service.candidate_name(session, candidate),
        qualification=session.get(Qualification, candidate.qualification_id), rows=rows, form=form,
        people=list(people_options.items()), roles=ROLE_LABELS, words=ROLE_WORDS,
        assignable=[(r.value, ROLE_LABELS[r]) for r in service.ASSIGNABLE]), status


# --- Shared helpers -----------------------------------------------------------------------------------------


def _refuse(form: Form, refusal: Refusal, fields: dict[str, str] | None = None) -> Form:
    """Undo the attempt and put the refusal beside the form's field it names ('roles.0' is 'roles')."""
    get_session().rollback()
    base = (refusal.field or "").split(".")[0]
    if refusal.kind == "invalid" and "pattern" in refusal.message and base in PLAIN:
        refusal = InvalidInput(PLAIN[base], field=refusal.field)
    return form.refuse(refusal, {refusal.field or "": (fields or {}).get(base, base)})


def _need(data: Mapping, **messages: str) -> None:
    """Refuse the first required field left empty, with its own message."""
    for name, message in messages.items():
        if not (data.get(name) or "").strip():
            raise InvalidInput(message, field=name)


def _date(value: str | None, name: str, *, required: bool = True) -> date | None:
    """Read a date as typed: a date picker sends 2026-11-23, and 23/11/2026 is understood too."""
    value, label = (value or "").strip(), DATE_LABELS.get(name, name.replace("_", " "))
    if not value:
        if required:
            raise InvalidInput(f"Enter {label}.", field=name)
        return None
    for pattern in ("%Y-%m-%d", "%d/%m/%Y"):
        try:
            return datetime.strptime(value, pattern).date()  # noqa: DTZ007 - a calendar date, no time zone
        except ValueError:
            continue
    raise InvalidInput(f"Enter {label} as a real date, day/month/year, like 31/01/2000 (not “{value}”).",
                       field=name)


def _dated(data: dict, *names: str, optional: tuple[str, ...] = ()) -> dict:
    """Return the form's data with its date fields read as dates."""
    return data | {n: _date(data.get(n), n) for n in names} | {n: _date(data.get(n), n, required=False)
                                                                for n in optional}


def _units(session: Session) -> list[Unit]:
    """Return the default qualification's units in order (Units 001 and 002), whose eligibility pages show."""
    return list(session.exec(select(Unit).join(QualificationUnit, QualificationUnit.unit_id == Unit.id)
                             .join(Qualification, Qualification.id == QualificationUnit.qualification_id)
                             .where(Qualification.code == DEFAULT_QUALIFICATION)
                             .order_by(QualificationUnit.position, Unit.code)))


def _standing(creds: service.Credentials, units: list[Unit]) -> dict:
    """Derive what a person's recorded credentials allow today: each unit's eligibility, expert witness approval."""
    today = actor().today
    return {"units": [(u.code, service.eligibility(creds, u, today)) for u in units],
            "expert_witness": rules.expert_witness_approved(creds.approvals, today)}


def _names(session: Session, ids: Iterable[uuid.UUID | None]) -> dict[uuid.UUID, str]:
    """Return people's names by id, in one query."""
    wanted = {i for i in ids if i}
    return dict(session.exec(select(User.id, User.name).where(col(User.id).in_(wanted))).all()) if wanted else {}


def _attached(session: Session, candidate_ids: list[uuid.UUID]) -> dict[uuid.UUID, dict[str, list[str]]]:
    """Return who is attached to each candidate now, by role, in one query."""
    found: dict[uuid.UUID, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    if candidate_ids:
        for row, name in session.exec(select(CandidateAssignment, User.name)
                                      .join(User, User.id == CandidateAssignment.user_id)
                                      .where(col(CandidateAssignment.candidate_id).in_(candidate_ids),
                                             col(CandidateAssignment.ended_on).is_(None)).order_by(User.name)):
            found[row.candidate_id][row.role].append(name)
    return found


def _pack_lists(session: Session) -> dict:
    """Return the loaded packs' lists: assessor and IQA qualifications (code, title), expert witness conditions."""
    lists: dict = {"assessor_qualifications": {}, "iqa_qualifications": {}, "expert_witness_conditions": {}}
    for pack in session.exec(select(SpecPack)):
        for kind in ("assessor_qualifications", "iqa_qualifications"):
            lists[kind] |= {q["code"]: q.get("title") or q["code"] for q in pack.document.get(kind, [])}
        lists["expert_witness_conditions"] |= {c["code"]: c["text"]
                                               for c in pack.document.get("expert_witness_conditions", [])}
    return lists
