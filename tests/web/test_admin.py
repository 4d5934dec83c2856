"""The centre administrator's pages: people, credentials, expert witnesses, candidate registration, assignments."""
import html as markup
import re
import uuid
from datetime import date
from html.parser import HTMLParser

import pytest
from sqlalchemy import event
from sqlmodel import select

from support.web import form_token
from tracker.models import (
    AssessorQualification,
    AuditEntry,
    Candidate,
    CandidateAssignment,
    ExpertWitnessApproval,
    IqaQualification,
    OccupationalCompetence,
    Role,
    RoleGrant,
    User,
)

REGISTRATION = {"registration_number": "CG900001", "date_of_birth": "1990-05-17", "registration_date": "2026-09-01",
                "qualification": "3085-02", "workplace": "Meadow View Care Home", "work_setting": "long_term_care"}
UNKNOWN = uuid.UUID("0190f1f5-0000-7000-8000-000000000000")  # a well-formed id no record has
EXPERT = {"ew_working_knowledge": "Trained in person-centred thinking tools",
          "ew_occupational_competence": "Palliative care nurse, 12 years",
          "ew_assessment_qualification": "", "ew_evaluating_role": "Clinical lead who appraises hospice staff",
          "ew_approved_on": "2026-11-01"}


@pytest.fixture
def admin(backend, session, factory):
    """The centre administrator, committed so the app sees them."""
    user = factory.admin
    session.commit()
    return user


@pytest.fixture
def as_admin(client, sign_in, admin):
    """A client signed in as the administrator."""
    sign_in(admin)
    return client


def post(client, path, data=None, **kwargs):
    """Post a form with the CSRF token a browser would send."""
    token = form_token(client.get("/auth/login").get_data(as_text=True))
    return client.post(path, data={**(data or {}), "csrf_token": token}, **kwargs)


def text(response) -> str:
    """Return a response's body as text."""
    return response.get_data(as_text=True)


def error_beside(html: str, field: str) -> str:
    """Return the message shown beside a field, or '' when there is none."""
    match = re.search(rf'<p class="field-error" id="{re.escape(field)}-error">(.*?)</p>', html, re.S)
    return markup.unescape(re.sub(r"<[^>]+>", "", match.group(1)).replace("Error:", "")).strip() if match else ""


def value_of(html: str, field: str) -> str | None:
    """Return the value an input shows, as a browser would read it."""
    match = re.search(rf'<input id="{re.escape(field)}" name="{re.escape(field)}"[^>]*value="([^"]*)"', html)
    return match.group(1) if match else None


def rows(session, model, **where):
    """Return the stored rows of a model matching the given columns, fresh from the database."""
    session.expire_all()
    query = select(model)
    for name, value in where.items():
        query = query.where(getattr(model, name) == value)
    return session.exec(query).all()


# --- People -----------------------------------------------------------------------------------------------------


def test_people_lists_everyone_with_roles_and_eligibility(as_admin, session, factory):
    """Everyone is listed with their roles; assessors with their eligibility, expert witnesses with approval."""
    factory.assessor(name="Ann Eligible")
    factory.assessor(name="Bob Knowledgeable", competence="knowledgeable")
    factory.expert_witness(name="Eve Approved")
    factory.expert_witness(name="Ed Unapproved", approved=False)
    session.commit()
    response = as_admin.get("/admin/people")
    html = text(response)
    assert response.status_code == 200 and "<html" in html and 'id="people"' in html
    ann, bob = html.split("Ann Eligible")[1].split("</tr>")[0], html.split("Bob Knowledgeable")[1].split("</tr>")[0]
    assert "Unit 001: yes" in ann and "Unit 002: yes" in ann
    assert "Unit 001: yes" in bob and "Unit 002: no" in bob
    assert "Approved" in html.split("Eve Approved")[1].split("</tr>")[0]
    assert "Not approved" in html.split("Ed Unapproved")[1].split("</tr>")[0]
    assert "Ada Admin" in html and "Centre administrator" in html


def test_people_filter_by_role_as_page_and_as_fragment(as_admin, session, factory):
    """?role= filters the list; an htmx request gets only the fragment, a normal request the page around it."""
    factory.assessor(name="Ann Assessor")
    factory.expert_witness(name="Eve Expert")
    session.commit()
    fragment = as_admin.get("/admin/people?role=expert_witness", headers={"HX-Request": "true"})
    body = text(fragment)
    assert fragment.status_code == 200 and "<html" not in body
    assert body.lstrip().startswith('<div id="people"') and "Eve Expert" in body and "Ann Assessor" not in body
    page = text(as_admin.get("/admin/people?role=expert_witness"))
    assert "<html" in page and 'hx-target="#people"' in page and "Eve Expert" in page and "Ann Assessor" not in page
    assert "Ann Assessor" in text(as_admin.get("/admin/people?role=nonsense"))
    boosted = as_admin.get("/admin/people", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert "<html" in text(boosted)


def test_people_page_queries_do_not_grow_with_the_number_of_people(app, as_admin, session, factory):
    """The list loads roles, credentials and approvals in a fixed number of queries, not one per person."""
    def count() -> int:
        statements = []
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(app.extensions["engine"], "before_cursor_execute", listener)
        try:
            assert as_admin.get("/admin/people").status_code == 200
        finally:
            event.remove(app.extensions["engine"], "before_cursor_execute", listener)
        return len(statements)

    factory.assessor()
    session.commit()
    few = count()
    for _ in range(4):
        factory.assessor()
        factory.expert_witness()
    session.commit()
    assert count() == few


def test_create_person_with_roles_and_no_password(as_admin, session):
    """A new person is stored with their roles; without a password they cannot sign in."""
    response = post(as_admin, "/admin/people/new", {"name": "Sam Patel", "email": "Sam@Centre.test",
                                                    "roles": ["witness", "assessor"]})
    assert response.status_code == 303
    (user,) = rows(session, User, email="sam@centre.test")
    assert response.headers["Location"] == f"/admin/people/{user.id}"
    assert user.name == "Sam Patel" and user.password_hash is None
    assert user.role_names == {"witness", "assessor"}
    assert "has no password, so cannot sign in" in text(as_admin.get(response.headers["Location"]))


def test_create_person_refusal_keeps_what_was_typed(as_admin, session, factory):
    """A duplicate email is refused beside the email field, with the name and roles still filled in."""
    factory.user(Role.ASSESSOR, email="taken@centre.test")
    session.commit()
    response = post(as_admin, "/admin/people/new", {"name": "Tess Taken", "email": "taken@centre.test",
                                                    "password": "a long enough password", "roles": ["iqa"]})
    html = text(response)
    assert response.status_code == 422
    assert "There is already an account for taken@centre.test" in error_beside(html, "email")
    assert value_of(html, "name") == "Tess Taken" and value_of(html, "email") == "taken@centre.test"
    assert re.search(r'name="roles" value="iqa" checked', html)
    assert "a long enough password" not in html
    assert len(rows(session, User, name="Tess Taken")) == 0


@pytest.mark.parametrize("data, field, message", [
    ({"name": "", "email": "x@centre.test"}, "name", "Name should have at least 1 character"),
    ({"name": "X", "email": "not an email"}, "email", "Enter an email address"),
    ({"name": "X", "email": "x@centre.test", "password": "short"}, "password", "at least 10 characters"),
    ({"name": "X", "email": "x@centre.test", "roles": ["boss"]}, "roles", "Roles"),
])
def test_create_person_invalid_input_beside_the_field(as_admin, data, field, message):
    """Each invalid field is named beside itself."""
    response = post(as_admin, "/admin/people/new", data)
    assert response.status_code == 422 and message in error_beside(text(response), field)


def test_person_page_shows_credentials_and_eligibility_in_words(as_admin, session, factory):
    """The person page says in words what the person may assess, and lists their records."""
    bob = factory.assessor(name="Bob Knowledgeable", competence="knowledgeable")
    candidate = factory.candidate(name="Cara Candidate", assessors=(bob,))
    session.commit()
    response = as_admin.get(f"/admin/people/{bob.id}")
    html = text(response)
    assert response.status_code == 200
    assert ("May assess Unit 001. Cannot assess Unit 002: is not recorded as occupationally competent."
            in re.sub(r"\s+", " ", html))
    assert "A1 Assess Candidate Performance Using a Range of Methods" in html and "by Ada Admin" in html
    assert "Occupationally knowledgeable: Adult social care" in html
    assert "Cara Candidate" in html and candidate.registration_number in html


def test_add_role(as_admin, session, factory):
    """A role is added to the person."""
    person = factory.user(Role.WITNESS)
    session.commit()
    response = post(as_admin, f"/admin/people/{person.id}/roles", {"role": "iqa"})
    assert response.status_code == 303 and response.headers["Location"].endswith("#role-section")
    assert rows(session, User, id=person.id)[0].role_names == {"witness", "iqa"}


@pytest.mark.parametrize("role, message", [("", "Choose the role"), ("candidate", "by registering them"),
                                           ("boss", "Choose one of the roles")])
def test_add_role_refused_beside_the_field(as_admin, session, factory, role, message):
    """An empty or ungrantable role is refused beside the role field."""
    person = factory.user(Role.WITNESS)
    session.commit()
    response = post(as_admin, f"/admin/people/{person.id}/roles", {"role": role})
    assert response.status_code == 422 and message in error_beside(text(response), "role")


def test_lead_iqa_set_and_cleared(as_admin, session, factory):
    """The administrator makes an IQA the lead IQA and back, each change audited; a non-IQA is refused."""
    iqa, witness = factory.user(Role.IQA, name="Ida Iqa"), factory.user(Role.WITNESS, name="Will Witness")
    session.commit()
    response = post(as_admin, f"/admin/people/{iqa.id}/lead-iqa", {"lead": "yes"})
    assert response.status_code == 303 and response.headers["Location"].endswith("#lead-section")
    grant = session.get(RoleGrant, (iqa.id, "iqa"))
    session.refresh(grant)
    assert grant.lead is True
    assert "Ida Iqa is the lead IQA" in text(as_admin.get(f"/admin/people/{iqa.id}"))
    assert post(as_admin, f"/admin/people/{iqa.id}/lead-iqa", {"lead": "no"}).status_code == 303
    session.refresh(grant)
    assert grant.lead is False
    actions = [e.details["lead"] for e in sorted(rows(session, AuditEntry, action="iqa.lead_set"), key=lambda e: e.seq)]
    assert actions == [True, False]
    refused = post(as_admin, f"/admin/people/{witness.id}/lead-iqa", {"lead": "yes"})
    assert refused.status_code == 422 and "does not hold the IQA role" in text(refused)
    assert post(as_admin, f"/admin/people/{iqa.id}/lead-iqa", {"lead": "maybe"}).status_code == 422


def test_add_qualification_competence_and_iqa_qualification(as_admin, session, factory):
    """Credentials are stored with the administrator as verifier; the person becomes eligible."""
    person = factory.user(Role.ASSESSOR, Role.IQA)
    session.commit()
    assert post(as_admin, f"/admin/people/{person.id}/qualifications", {
        "q_qualification_code": "QCF_L3_CAVA", "q_awarded_on": "2020-06-01", "q_verified_on": "2026-01-10"},
    ).status_code == 303
    assert post(as_admin, f"/admin/people/{person.id}/competence", {
        "c_level": "competent", "c_area": "Adult social care", "c_evidence": "Deputy manager, 8 years",
        "c_verified_on": "10/01/2026"}).status_code == 303
    assert post(as_admin, f"/admin/people/{person.id}/iqa-qualifications", {
        "iqa_qualification_code": "V1", "iqa_awarded_on": "", "iqa_verified_on": "2026-01-10"}).status_code == 303
    (q,) = rows(session, AssessorQualification, user_id=person.id)
    (c,) = rows(session, OccupationalCompetence, user_id=person.id)
    (i,) = rows(session, IqaQualification, user_id=person.id)
    admin_id = rows(session, User, email="admin@centre.test")[0].id
    assert (q.qualification_code, q.awarded_on, q.verified_by_id) == ("QCF_L3_CAVA", date(2020, 6, 1), admin_id)
    assert (c.level, c.verified_on, c.verified_by_id) == ("competent", date(2026, 1, 10), admin_id)
    assert (i.qualification_code, i.awarded_on, i.verified_by_id) == ("V1", None, admin_id)
    html = re.sub(r"\s+", " ", text(as_admin.get(f"/admin/people/{person.id}")))
    assert "May assess Unit 001. May assess Unit 002." in html


@pytest.mark.parametrize("path, data, field, message", [
    ("qualifications", {"q_qualification_code": "", "q_verified_on": "2026-01-10"}, "q_qualification_code",
     "Choose the qualification"),
    ("qualifications", {"q_qualification_code": "A1", "q_verified_on": "yesterday"}, "q_verified_on",
     "Enter the date the centre verified it as a real date"),
    ("qualifications", {"q_qualification_code": "A1", "q_awarded_on": "2026-02-01", "q_verified_on": "2026-01-10"},
     "q_awarded_on", "cannot be verified before it was awarded"),
    ("competence", {"c_level": "expert", "c_area": "Care", "c_evidence": "Years", "c_verified_on": "2026-01-10"},
     "c_level", "Choose whether they are occupationally competent or knowledgeable"),
    ("competence", {"c_level": "competent", "c_area": "Care", "c_evidence": "", "c_verified_on": "2026-01-10"},
     "c_evidence", "Say what shows it"),
    ("iqa-qualifications", {"iqa_qualification_code": "A1", "iqa_verified_on": "2026-01-10"},
     "iqa_qualification_code", "not one of the IQA qualifications"),
    ("iqa-qualifications", {"iqa_qualification_code": "V1", "iqa_verified_on": "31/02/2026"}, "iqa_verified_on",
     "as a real date"),
])
def test_credential_refusals_beside_the_field(as_admin, session, factory, path, data, field, message):
    """A refused credential comes back on the person page, 422, beside its field, with what was typed."""
    person = factory.user(Role.ASSESSOR, Role.IQA)
    session.commit()
    response = post(as_admin, f"/admin/people/{person.id}/{path}", data)
    html = text(response)
    assert response.status_code == 422 and message in error_beside(html, field)
    assert 'class="error-summary"' in html
    for name, typed in data.items():
        if name != field and typed and name.endswith("_on"):
            assert value_of(html, name) == typed
    for model in (AssessorQualification, OccupationalCompetence, IqaQualification):
        assert rows(session, model, user_id=person.id) == []


def test_administrator_cannot_verify_their_own_credentials(as_admin, admin):
    """Credentials are verified by someone else: the refusal is shown on the form."""
    response = post(as_admin, f"/admin/people/{admin.id}/qualifications",
                    {"q_qualification_code": "A1", "q_verified_on": "2026-01-10"})
    assert response.status_code == 422 and "cannot verify their own credentials" in text(response)


def test_approve_expert_witness(as_admin, session, factory):
    """An expert witness with all three conditions recorded is approved and given the role."""
    person = factory.user(Role.WITNESS, name="Wendy Witness")
    session.commit()
    response = post(as_admin, f"/admin/people/{person.id}/expert-witness", EXPERT)
    assert response.status_code == 303
    (approval,) = rows(session, ExpertWitnessApproval, user_id=person.id)
    assert approval.evaluating_role == "Clinical lead who appraises hospice staff"
    assert approval.assessment_qualification is None and approval.approved_on == date(2026, 11, 1)
    assert "expert_witness" in rows(session, User, id=person.id)[0].role_names
    assert "Approved as an expert witness" in text(as_admin.get(f"/admin/people/{person.id}"))


@pytest.mark.parametrize("missing, field", [
    (("ew_working_knowledge",), "ew_working_knowledge"),
    (("ew_occupational_competence",), "ew_occupational_competence"),
    (("ew_assessment_qualification", "ew_evaluating_role"), "ew_assessment_qualification"),
])
def test_expert_witness_missing_condition_refused_beside_it(as_admin, session, factory, missing, field):
    """Approval without one of the three conditions is refused beside that condition, keeping the rest."""
    person = factory.user(Role.WITNESS, name="Wendy Witness")
    session.commit()
    data = EXPERT | dict.fromkeys(missing, "")
    response = post(as_admin, f"/admin/people/{person.id}/expert-witness", data)
    html = text(response)
    assert response.status_code == 422
    assert "Wendy Witness cannot be approved as an expert witness" in error_beside(html, field)
    assert [name for name in EXPERT if error_beside(html, name)] == [field]
    assert value_of(html, "ew_approved_on") == "2026-11-01"
    kept = [name for name in ("ew_working_knowledge", "ew_occupational_competence") if name not in missing]
    assert all(EXPERT[name] in html for name in kept)
    assert rows(session, ExpertWitnessApproval, user_id=person.id) == []


def test_expert_witness_every_missing_condition_flagged(as_admin, session, factory):
    """With two conditions missing, the first carries the rule's message and the other is flagged too."""
    person = factory.user(Role.WITNESS, name="Wendy Witness")
    session.commit()
    data = EXPERT | {"ew_occupational_competence": "", "ew_evaluating_role": ""}
    html = text(post(as_admin, f"/admin/people/{person.id}/expert-witness", data))
    assert "cannot be approved as an expert witness" in error_beside(html, "ew_occupational_competence")
    assert "missing too" in error_beside(html, "ew_assessment_qualification")
    assert not error_beside(html, "ew_working_knowledge")


def test_withdraw_a_credential_keeps_the_record(as_admin, session, factory):
    """A withdrawn qualification keeps its row, with the date and reason, and eligibility follows."""
    person = factory.assessor()
    session.commit()
    (q,) = rows(session, AssessorQualification, user_id=person.id)
    response = post(as_admin, f"/admin/people/{person.id}/withdraw/assessor_qualification/{q.id}",
                    {f"reason-{q.id}": "Certificate found to be forged", f"withdrawn_on-{q.id}": ""})
    assert response.status_code == 303
    (q,) = rows(session, AssessorQualification, user_id=person.id)
    assert q.withdrawn_reason == "Certificate found to be forged" and q.withdrawn_on is not None
    html = re.sub(r"\s+", " ", text(as_admin.get(f"/admin/people/{person.id}")))
    assert "Cannot assess Unit 002: holds none of the qualifications" in html
    assert "Certificate found to be forged" in html


def test_withdraw_without_reason_refused_beside_it(as_admin, session, factory):
    """Withdrawing needs a reason; the refusal is beside the reason box of that record."""
    person = factory.assessor()
    session.commit()
    (c,) = rows(session, OccupationalCompetence, user_id=person.id)
    response = post(as_admin, f"/admin/people/{person.id}/withdraw/competence/{c.id}",
                    {f"reason-{c.id}": " ", f"withdrawn_on-{c.id}": "2026-11-01"})
    assert response.status_code == 422
    assert "Give the reason" in error_beside(text(response), f"reason-{c.id}")
    assert rows(session, OccupationalCompetence, user_id=person.id)[0].withdrawn_on is None


def test_withdraw_forged_records_not_found(as_admin, session, factory):
    """Another person's record, an unknown kind, or a made-up id is not found."""
    person, other = factory.assessor(), factory.assessor()
    session.commit()
    (theirs,) = rows(session, AssessorQualification, user_id=other.id)
    for kind, record in [("assessor_qualification", theirs.id), ("certificate", theirs.id),
                         ("competence", "not-a-uuid"), ("competence", uuid.uuid4())]:
        response = post(as_admin, f"/admin/people/{person.id}/withdraw/{kind}/{record}", {f"reason-{record}": "x"})
        assert response.status_code == 404, kind
    assert rows(session, AssessorQualification, user_id=other.id)[0].withdrawn_on is None


# --- Candidates ---------------------------------------------------------------------------------------------------


@pytest.fixture
def staff(backend, session, factory):
    """An eligible assessor, an IQA, and a person who is not yet a candidate."""
    people = {"assessor": factory.assessor(name="Ann Assessor"), "iqa": factory.user(Role.IQA, name="Ian IQA"),
              "person": factory.user(name="Cara Newcomer")}
    session.commit()
    return people


def test_candidates_list_shows_assessors_and_iqa(as_admin, session, factory, staff):
    """Registered candidates are listed with their assessors and IQA."""
    factory.candidate(name="Cara Candidate", assessors=(staff["assessor"],), iqas=(staff["iqa"],))
    session.commit()
    html = text(as_admin.get("/admin/candidates"))
    row = html.split("Cara Candidate")[1].split("</tr>")[0]
    assert "Ann Assessor" in row and "Ian IQA" in row


def test_register_form_defaults(as_admin, staff):
    """The form offers loaded qualifications (3085-02 chosen), the Unit 002 settings, and eligible assessors."""
    html = text(as_admin.get("/admin/candidates/new"))
    assert '<option value="3085-02" selected>' in html
    assert "People receiving end of life care" in html and 'value="other"' in html
    assert "Ann Assessor: may assess Unit 001 and 002" in html and "Ian IQA" in html
    assert "Cara Newcomer" in html


def test_register_existing_person(as_admin, session, staff):
    """Registering stores the candidate, grants the role, and attaches the assessor and IQA."""
    data = REGISTRATION | {"person": str(staff["person"].id), "assessors": [str(staff["assessor"].id)],
                           "iqas": [str(staff["iqa"].id)]}
    response = post(as_admin, "/admin/candidates/new", data)
    assert response.status_code == 303
    (candidate,) = rows(session, Candidate, registration_number="CG900001")
    assert response.headers["Location"] == f"/admin/candidates/{candidate.id}"
    assert candidate.user_id == staff["person"].id and candidate.date_of_birth == date(1990, 5, 17)
    assigned = {(a.user_id, a.role) for a in rows(session, CandidateAssignment, candidate_id=candidate.id)}
    assert assigned == {(staff["assessor"].id, "assessor"), (staff["iqa"].id, "iqa")}
    assert "candidate" in rows(session, User, id=staff["person"].id)[0].role_names
    page = text(as_admin.get(response.headers["Location"]))
    assert "Cara Newcomer" in page and "Ann Assessor" in page


def test_register_new_person_inline(as_admin, session, staff):
    """A new person can be named on the form: they are created without a password and registered."""
    data = REGISTRATION | {"new_name": "Nia New", "new_email": "nia@centre.test",
                           "assessors": [str(staff["assessor"].id)]}
    assert post(as_admin, "/admin/candidates/new", data).status_code == 303
    (user,) = rows(session, User, email="nia@centre.test")
    assert user.password_hash is None and user.role_names == {"candidate"}
    assert rows(session, Candidate, user_id=user.id)[0].registration_number == "CG900001"


def test_register_under_16_refused_beside_date_of_birth(as_admin, session, staff):
    """An under-16 is refused beside the date of birth; everything typed stays and nothing is written."""
    data = REGISTRATION | {"new_name": "Young Yusuf", "new_email": "yusuf@centre.test", "date_of_birth": "2012-01-01",
                           "work_setting": "own_home", "assessors": [str(staff["assessor"].id)],
                           "iqas": [str(staff["iqa"].id)]}
    response = post(as_admin, "/admin/candidates/new", data)
    html = text(response)
    assert response.status_code == 422
    assert "Candidates under 16 cannot be registered" in error_beside(html, "date_of_birth")
    assert 'aria-describedby="date_of_birth-error" aria-invalid="true"' in html
    assert '<a href="#date_of_birth">' in html
    for name in ("new_name", "new_email", "registration_number", "date_of_birth", "registration_date", "workplace"):
        assert value_of(html, name) == data[name], name
    assert '<option value="own_home" selected>' in html
    assert re.search(rf'name="assessors" value="{staff["assessor"].id}" checked', html)
    assert re.search(rf'name="iqas" value="{staff["iqa"].id}" checked', html)
    assert rows(session, Candidate) == [] and rows(session, User, email="yusuf@centre.test") == []


def test_register_unqualified_assessor_refused_on_the_form(as_admin, session, factory, staff):
    """An assessor eligible for no unit is refused beside the assessors, and nothing is written."""
    unqualified = factory.assessor(name="Uma Unqualified", qualification=None)
    session.commit()
    data = REGISTRATION | {"person": str(staff["person"].id), "assessors": [str(unqualified.id)]}
    response = post(as_admin, "/admin/candidates/new", data)
    html = text(response)
    assert response.status_code == 422
    assert "Uma Unqualified cannot assess" in error_beside(html, "assessors")
    assert "Uma Unqualified: not eligible for any unit yet" in html
    assert rows(session, Candidate) == []


@pytest.mark.parametrize("overrides, field, message", [
    ({"registration_number": "CG000001"}, "registration_number", "already in use"),
    ({"date_of_birth": "yesterday"}, "date_of_birth", "Enter the date of birth as a real date"),
    ({"date_of_birth": ""}, "date_of_birth", "Enter the date of birth."),
    ({"registration_date": "2099-01-01"}, "registration_date", "cannot be in the future"),
    ({"work_setting": "classroom"}, "work_setting", "Choose the candidate's work setting"),
    ({"qualification": "9999-99"}, "qualification", "No qualification 9999-99"),
    ({"workplace": ""}, "workplace", "Workplace"),
    ({"person": ""}, "person", "Choose the person to register"),
    ({"new_name": "Both", "new_email": "both@centre.test"}, "person", "not both"),
    ({"person": "", "new_name": "Dup", "new_email": "admin@centre.test"}, "new_email", "already an account"),
])
def test_register_refusals_beside_the_field(as_admin, session, factory, staff, overrides, field, message):
    """Each refused registration comes back, 422, with the message beside the field that caused it."""
    factory.candidate(registration_number="CG000001")
    session.commit()
    data = REGISTRATION | {"person": str(staff["person"].id)} | overrides
    response = post(as_admin, "/admin/candidates/new", data)
    assert response.status_code == 422 and message in error_beside(text(response), field)
    assert rows(session, Candidate, user_id=staff["person"].id) == []


@pytest.fixture
def candidate(staff, session, factory):
    """A registered candidate with an assessor."""
    registered = factory.candidate(name="Cara Candidate", assessors=(staff["assessor"],))
    session.commit()
    return registered


def test_assign_and_unassign(as_admin, session, factory, candidate):
    """A witness is attached; detaching ends the assignment (kept on record, audited)."""
    witness = factory.user(Role.WITNESS, name="Sam Witness")
    session.commit()
    response = post(as_admin, f"/admin/candidates/{candidate.id}/assign", {"person": str(witness.id),
                                                                           "role": "witness"})
    assert response.status_code == 303
    (row,) = rows(session, CandidateAssignment, candidate_id=candidate.id, user_id=witness.id)
    assert row.role == "witness" and row.ended_on is None
    assert "Sam Witness" in text(as_admin.get(f"/admin/candidates/{candidate.id}"))
    response = post(as_admin, f"/admin/candidates/{candidate.id}/unassign/{row.id}")
    assert response.status_code == 303
    (row,) = rows(session, CandidateAssignment, candidate_id=candidate.id, user_id=witness.id)
    assert row.ended_on is not None
    assert rows(session, AuditEntry, action="candidate.unassigned", entity_id=str(row.id))


@pytest.mark.parametrize("who, role, field, message", [
    ("unqualified", "assessor", "person", "cannot assess"),
    ("witness", "iqa", "person", "does not hold the iqa role"),
    ("witness", "administrator", "role", "cannot be assigned"),
    ("none", "witness", "person", "Choose the person"),
])
def test_assign_refused_beside_the_field(as_admin, session, factory, candidate, who, role, field, message):
    """A wrong assignment is refused on the candidate page, beside the field."""
    people = {"unqualified": factory.assessor(qualification=None), "witness": factory.user(Role.WITNESS)}
    session.commit()
    person = str(people[who].id) if who in people else ""
    response = post(as_admin, f"/admin/candidates/{candidate.id}/assign", {"person": person, "role": role})
    assert response.status_code == 422 and message in error_beside(text(response), field)
    assert len(rows(session, CandidateAssignment, candidate_id=candidate.id)) == 1


def test_unassign_another_candidates_assignment_not_found(as_admin, session, factory, staff, candidate):
    """An assignment id from another candidate is not found, and nothing changes."""
    other = factory.candidate(assessors=(staff["assessor"],))
    session.commit()
    (theirs,) = rows(session, CandidateAssignment, candidate_id=other.id)
    assert post(as_admin, f"/admin/candidates/{candidate.id}/unassign/{theirs.id}").status_code == 404
    assert rows(session, CandidateAssignment, id=theirs.id)[0].ended_on is None


@pytest.mark.parametrize("path", ["/admin/people/not-a-uuid", f"/admin/people/{UNKNOWN}",
                                  "/admin/candidates/not-a-uuid", f"/admin/candidates/{UNKNOWN}"])
def test_forged_ids_not_found(as_admin, path):
    """A malformed or unknown id is a 404 page, never a 500."""
    response = as_admin.get(path)
    assert response.status_code == 404 and "Not found" in text(response)


@pytest.mark.parametrize("path", ["roles", "qualifications", "competence", "expert-witness", "iqa-qualifications"])
def test_posts_about_unknown_people_not_found(as_admin, path):
    """A form posted for a person who does not exist is a 404."""
    assert post(as_admin, f"/admin/people/{uuid.uuid4()}/{path}", {"role": "iqa"}).status_code == 404
    assert post(as_admin, f"/admin/people/not-a-uuid/{path}", {"role": "iqa"}).status_code == 404


# --- Who may use these pages ----------------------------------------------------------------------------------------


@pytest.fixture
def routes(staff, candidate, session):
    """Every administrator route, as (method, path), with real ids in it."""
    person = staff["person"].id
    (record,) = rows(session, AssessorQualification, user_id=staff["assessor"].id)
    (assignment,) = rows(session, CandidateAssignment, candidate_id=candidate.id)
    return [("GET", "/admin/people"), ("GET", "/admin/people?role=assessor"), ("GET", "/admin/people/new"),
            ("POST", "/admin/people/new"), ("GET", f"/admin/people/{person}"),
            ("POST", f"/admin/people/{person}/roles"), ("POST", f"/admin/people/{person}/qualifications"),
            ("POST", f"/admin/people/{person}/competence"), ("POST", f"/admin/people/{person}/expert-witness"),
            ("POST", f"/admin/people/{person}/iqa-qualifications"),
            ("POST", f"/admin/people/{staff['assessor'].id}/withdraw/assessor_qualification/{record.id}"),
            ("GET", "/admin/candidates"), ("GET", "/admin/candidates/new"), ("POST", "/admin/candidates/new"),
            ("GET", f"/admin/candidates/{candidate.id}"), ("POST", f"/admin/candidates/{candidate.id}/assign"),
            ("POST", f"/admin/candidates/{candidate.id}/unassign/{assignment.id}")]


def test_every_admin_route_answers_the_administrator(as_admin, routes):
    """Every page opens for the administrator; every form answers (saved, or refused on the form)."""
    for method, path in routes:
        response = as_admin.get(path) if method == "GET" else post(as_admin, path)
        assert response.status_code in ((200,) if method == "GET" else (303, 422)), path


@pytest.mark.parametrize("role", [Role.ASSESSOR, Role.IQA, Role.EXPERT_WITNESS, Role.WITNESS, Role.EQA,
                                  Role.CANDIDATE])
def test_every_admin_route_refused_for_other_roles(client, sign_in, session, factory, routes, role):
    """Everyone but the administrator gets 403 on every administrator route, and nothing changes."""
    user = factory.candidate().user if role == Role.CANDIDATE else factory.user(role)
    session.commit()
    sign_in(user)
    audit_before = len(rows(session, AuditEntry))
    for method, path in routes:
        response = client.get(path) if method == "GET" else post(client, path, {"role": "iqa", "reason": "x"})
        assert response.status_code == 403, path
        # An EQA account's writes are refused earlier, app-wide, as read-only.
        assert "Only the centre administrator" in text(response) or (
            role == Role.EQA and method == "POST" and "read-only" in text(response))
    assert len(rows(session, AuditEntry)) == audit_before


def test_signed_out_visitor_sent_to_sign_in(client, routes):
    """A signed-out visitor is sent to sign in; an htmx request is told to redirect the whole page."""
    for method, path in routes:
        response = client.get(path) if method == "GET" else post(client, path)
        assert response.status_code == 302 and response.headers["Location"].startswith("/auth/login"), path
    response = client.get("/admin/people?role=assessor", headers={"HX-Request": "true"})
    assert response.headers["HX-Redirect"].startswith("/auth/login")


class _Structure(HTMLParser):
    """Collect ids, labels' targets, form controls and aria-describedby references of a page."""

    def __init__(self):
        super().__init__()
        self.ids, self.labelled, self.controls, self.described = [], set(), [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if "id" in attrs:
            self.ids.append(attrs["id"])
        if tag == "label" and "for" in attrs:
            self.labelled.add(attrs["for"])
        if tag in ("input", "select", "textarea") and attrs.get("type") not in ("hidden", "submit"):
            self.controls.append(attrs.get("id"))
        self.described += (attrs.get("aria-describedby") or "").split()


def test_admin_pages_label_every_field_and_link_every_error(as_admin, session, factory, staff, candidate):
    """On every page (and with errors showing) ids are unique, every field has a label, every described-by exists."""
    person = factory.expert_witness(name="Eve Expert")
    session.commit()
    pages = [as_admin.get(path) for path in (
        "/admin/people", "/admin/people/new", f"/admin/people/{staff['assessor'].id}", f"/admin/people/{person.id}",
        "/admin/candidates", "/admin/candidates/new", f"/admin/candidates/{candidate.id}")]
    pages += [post(as_admin, "/admin/candidates/new", REGISTRATION | {"date_of_birth": "2012-01-01"}),
              post(as_admin, f"/admin/people/{person.id}/expert-witness", EXPERT | {"ew_working_knowledge": ""}),
              post(as_admin, "/admin/people/new", {"roles": ["boss"]})]
    for page in pages:
        found = _Structure()
        found.feed(text(page))
        assert len(found.ids) == len(set(found.ids)), [i for i in found.ids if found.ids.count(i) > 1]
        assert all(c and c in found.labelled for c in found.controls), set(found.controls) - found.labelled
        assert set(found.described) <= set(found.ids)
