"""The permission matrix: every route, for every role of a small centre, answers as the roles allow.

A route added without an entry in ROUTES makes `test_every_route_has_an_expectation` fail.
"""
import io
import uuid
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func
from sqlmodel import Session, select

from support.factories import NOW, TODAY, Factory
from support.web import form_token
from tracker import media
from tracker.db import make_engine
from tracker.models import (
    AssessorQualification,
    Attachment,
    AuditEntry,
    Candidate,
    CandidateAssignment,
    CriterionDecision,
    Evidence,
    EvidenceReview,
    EvidenceVersion,
    IqaAction,
    Role,
    SampleItem,
    Signature,
    Status,
    UnitSignOff,
    User,
)
from tracker.services import eqa as eqa_service
from tracker.services import evidence as evidence_service
from tracker.storage import LocalStorage

# Who may do what is decided in Python, not by the database engine: the matrix runs on SQLite, and the
# pages themselves are tested on both engines in test_pages.py and test_admin.py.
BACKENDS = ("sqlite",)

ROLES = ("administrator", "assessor_a", "assessor_b", "iqa", "expert_witness", "witness", "candidate_c",
         "candidate_d", "eqa", "signed_out")
STAFF_ROLES = ROLES[:-1]
NOBODY = "0190b6a4-1a2b-7c3d-8e4f-5a6b7c8d9e0f"  # a well-formed id that names no record
COUNTED = (Evidence, EvidenceVersion, EvidenceReview, CriterionDecision, UnitSignOff, Signature, Attachment,
           AuditEntry)


@dataclass
class Centre:
    """The people and records every permission test starts from."""

    people: dict[str, User]
    c: Candidate
    d: Candidate
    observation: Evidence
    work_product: Evidence
    testimony: Evidence
    draft: Evidence
    photo_sha: str
    photo_name: str
    extra: dict = field(default_factory=dict)


def png_bytes(colour: str = "teal", size: tuple[int, int] = (16, 12)) -> bytes:
    """Return a small real PNG."""
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


@dataclass(frozen=True)
class World:
    """A centre built once per test process: its database file, its files, and the ids of what is in it."""

    database: Path
    media: Path
    ids: dict


def build(session, factory, storage) -> dict:
    """Make the centre: administrator, two assessors, an IQA, two witnesses, two candidates, an EQA; and C's
    evidence. Return the ids of what it made."""
    a = factory.assessor(name="Ann Assessor")
    b = factory.assessor(name="Bob Assessor")
    iqa = factory.user(Role.IQA, name="Ida Iqa")
    expert = factory.expert_witness(name="Eve Expert")
    witness = factory.user(Role.WITNESS, name="Will Witness")
    eqa = factory.user(Role.EQA, name="Ezra External")
    granted, other = factory.user(Role.EQA, name="Greta Granted"), factory.user(Role.EQA, name="Otto Other")
    c = factory.candidate(name="Cara Candidate", assessors=(a,), iqas=(iqa,), witnesses=(witness,),
                          expert_witnesses=(expert,))
    d = factory.candidate(name="Dan Candidate", assessors=(b,))
    users = {"administrator": factory.admin, "assessor_a": a, "assessor_b": b, "iqa": iqa,
             "expert_witness": expert, "witness": witness, "eqa": eqa, "eqa_granted": granted, "eqa_other": other,
             "candidate_c": session.get(User, c.user_id), "candidate_d": session.get(User, d.user_id)}
    observation = factory.capture(a, c, "observation", title="Observed care planning")
    stored = media.ingest(session, storage, io.BytesIO(png_bytes()), "one-page profile.png")
    work_product = factory.capture(users["candidate_c"], c, "work_product", title="One-page profile",
                                   attachments=[{"sha256": stored.sha256, "filename": stored.filename}])
    evidence_service.sign(session, factory.actor(users["candidate_c"]), work_product.id, {"kind": "authenticity"})
    testimony = factory.capture(witness, c, "witness_testimony", title="Testimony from the night shift")
    draft = factory.capture(users["candidate_c"], c, "work_product", title="Draft support plan", submit=False,
                            attachments=[], seen_in_place=True, location="Care plan folder, office")
    for inspector, candidate in ((granted, c), (other, d)):  # a visit in force: one to C, one to D only
        eqa_service.grant(session, factory.as_admin, {
            "eqa_id": inspector.id, "candidate_ids": [candidate.id], "starts_at": NOW - timedelta(days=1),
            "ends_at": NOW + timedelta(days=7), "reason": "Standards verification visit"})
    session.commit()
    return {"people": {role: user.id for role, user in users.items()}, "c": c.id, "d": d.id,
            "observation": observation.id, "work_product": work_product.id, "testimony": testimony.id,
            "draft": draft.id, "photo_sha": stored.sha256, "photo_name": stored.filename,
            "b_qualification": session.exec(select(AssessorQualification.id).where(
                AssessorQualification.user_id == b.id)).one(),
            "witness_on_c": session.exec(select(CandidateAssignment.id).where(
                CandidateAssignment.candidate_id == c.id, CandidateAssignment.user_id == witness.id)).one()}


@pytest.fixture(scope="session")
def world(sqlite_template, tmp_path_factory) -> World:
    """The centre every permission test starts from, built once through the real services and copied per test."""
    folder = tmp_path_factory.mktemp("permission-world")
    database = folder / "tracker.db"
    shutil.copy(sqlite_template, database)
    engine = make_engine(f"sqlite:///{database}")
    with Session(engine, expire_on_commit=False) as session:
        ids = build(session, Factory(session, TODAY), LocalStorage(folder / "media"))
    with engine.connect() as conn:  # fold the write-ahead log into the file, so the file alone is the database
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return World(database, folder / "media", ids)


@pytest.fixture
def database_url(request, database_url, tmp_path):
    """This test's database: a copy of the built centre for tests that start from it, else a fresh one."""
    if "centre" in request.fixturenames:
        world = request.getfixturevalue("world")
        shutil.copy(world.database, database_url.removeprefix("sqlite:///"))
        shutil.copytree(world.media, tmp_path / "instance" / "media")
    return database_url


@pytest.fixture
def centre(backend, session, factory, world) -> Centre:
    """The built centre, read into this test's session (its administrator is the factory's)."""
    ids = world.ids
    factory.adopt_admin(session.get(User, ids["people"]["administrator"]))
    users = {role: session.get(User, user_id) for role, user_id in ids["people"].items()}
    return Centre(users, session.get(Candidate, ids["c"]), session.get(Candidate, ids["d"]),
                  *(session.get(Evidence, ids[k]) for k in ("observation", "work_product", "testimony", "draft")),
                  ids["photo_sha"], ids["photo_name"],
                  {"b_qualification": ids["b_qualification"], "witness_on_c": ids["witness_on_c"]})


@pytest.fixture
def as_role(client, sign_in, centre):
    """Sign in as a role (or stay signed out) and return the session's CSRF token, read from the sign-in page."""
    def do(role: str) -> str:
        if role != "signed_out":
            assert sign_in(centre.people[role]).status_code == 302
        return form_token(client.get("/auth/login").get_data(as_text=True))
    return do


def snapshot(session) -> dict[str, int]:
    """Count the rows a refused request must not add, and the drafts it must not submit."""
    session.commit()  # end any read transaction, so the app's commits are seen
    counts = {m.__name__: session.exec(select(func.count()).select_from(m)).one() for m in COUNTED}
    counts["drafts"] = session.exec(select(func.count()).select_from(Evidence).where(
        Evidence.status == Status.DRAFT)).one()
    return counts


# --- Expectations ----------------------------------------------------------------------------------------------


def expect(default: int, signed_out: int = 302, **roles: int) -> dict[str, int]:
    """Expected statuses: `default` for every signed-in role unless named, 302 to sign-in when signed out."""
    return {role: roles.get(role, default) for role in STAFF_ROLES} | {"signed_out": signed_out}


# Who is connected to candidate C: everyone else gets 404 for C's records.
STRANGERS = {"administrator": 404, "assessor_b": 404, "candidate_d": 404, "eqa": 404}
# The whole portfolio: C, C's assessor and C's IQA. Witnesses see only what they recorded.
WHOLE = {"assessor_a": 200, "iqa": 200, "candidate_c": 200}
ALONE = {"expert_witness": 404, "witness": 404}


def when(**statuses: int) -> dict[str, int]:
    """Expected statuses for C's records: strangers 404, otherwise as given."""
    return expect(404, **(STRANGERS | statuses))


def activity_day() -> str:
    """Return a date after registration and not in the future, as a date field sends it."""
    return (date.today() - timedelta(days=3)).isoformat()


def body_for(method: str) -> Callable[[Centre, str], dict]:
    """Return a valid capture form for a method."""
    def build(centre: Centre, role: str) -> dict:
        data = {"title": f"New {method} by {role}", "activity_date": activity_day(), "action": "submit",
                "narrative": "Supported Mr K to lead his review; used a relationship circle.",
                "criteria": "3.1", "note-3.1": "Led by the person"}
        if method in ("observation", "witness_testimony"):
            data["setting"] = "long_term_care"
        if method == "work_product":
            data |= {"seen_in_place": "yes", "location": "Care plan folder, office"}
        if method == "witness_testimony":
            data |= {"witness_name": "Sam Patel", "witness_role": "Senior carer",
                     "witness_relationship": "Colleague on the same shift", "witness_contact": "01632 960123",
                     "witness_signature_name": "Sam Patel"}
        return data
    return build


def revise_body(centre: Centre, role: str) -> dict:
    """Return a valid change to C's work product, keeping its file."""
    return {"title": "One-page profile, with Mrs B's wishes", "activity_date": activity_day(),
            "narrative": "Revised profile.", "criteria": "2.1", "note-2.1": "Good days and bad days",
            "kept": f"{centre.photo_sha}|{centre.photo_name}", "base_version": "1", "declaration": "yes",
            "action": "submit"}


def all_met(centre: Centre, factory, session) -> None:
    """Make C ready for sign-off."""
    factory.all_met(centre.people["assessor_a"], centre.c)
    session.commit()


@dataclass(frozen=True)
class Route:
    """One row of the matrix: a route, how to call it, and what each role gets."""

    endpoint: str
    method: str
    path: Callable[[Centre], str]
    statuses: dict[str, int]
    body: Callable[[Centre, str], dict] | None = None
    writes: str | None = None  # the count a successful POST changes
    prepare: Callable | None = None
    label: str = ""

    @property
    def id(self) -> str:
        return f"{self.method} {self.endpoint}{' ' + self.label if self.label else ''}"


CAPTURE = {  # method: (who may open and use the form, who is refused by a handbook rule when posting)
    "observation": ({"assessor_a": 200, "expert_witness": 200, "witness": 200, "candidate_c": 200, "iqa": 403},
                    {"witness": 422, "candidate_c": 422}),
    "work_product": ({"assessor_a": 200, "candidate_c": 200, "expert_witness": 403, "witness": 403, "iqa": 403}, {}),
    "witness_testimony": ({"assessor_a": 200, "expert_witness": 200, "witness": 200, "candidate_c": 403,
                           "iqa": 403}, {}),
    "professional_discussion": ({"assessor_a": 200, "expert_witness": 403, "witness": 403, "candidate_c": 403,
                                 "iqa": 403}, {}),
}


def _capture_routes() -> list[Route]:
    routes = []
    for method, (form, rule) in CAPTURE.items():
        path = (lambda m: lambda ctr: f"/candidates/{ctr.c.id}/evidence/new/{m}")(method)
        posted = {role: 303 if status == 200 else status for role, status in form.items()} | rule
        routes += [Route("evidence.create", "GET", path, when(**form), label=method),
                   Route("evidence.create", "POST", path, when(**posted), body_for(method), "Evidence", label=method)]
    return routes


def admin_only(ok: int) -> dict[str, int]:
    """Expected statuses for the administrator's pages: `ok` for the administrator, 403 for everyone else."""
    return expect(403, administrator=ok)


def admin_post(endpoint: str, path: Callable[[Centre], str], body: Callable[[Centre], dict]) -> Route:
    """A row for an administrator's form: 303 and an audit entry for the administrator, 403 for the rest."""
    return Route(endpoint, "POST", path, admin_only(303), lambda ctr, role: body(ctr), "AuditEntry")


def today() -> str:
    """Return today as a date field sends it."""
    return date.today().isoformat()


def close_account(centre: Centre, factory, session) -> None:
    """Close a former witness's account, so the administrator can open it again (the witness still signs in)."""
    from tracker.services import people

    leaver = factory.user(Role.WITNESS, name="Len Leaver")
    people.deactivate(session, factory.as_admin, leaver, "Left the centre")
    session.commit()
    centre.extra["closed"] = leaver.id


ADMIN_ROUTES = [
    Route("admin.people", "GET", lambda ctr: "/admin/people", admin_only(200)),
    Route("admin.create_person", "GET", lambda ctr: "/admin/people/new", admin_only(200)),
    admin_post("admin.create_person", lambda ctr: "/admin/people/new",
               lambda ctr: {"name": "Nell New", "email": "nell@centre.test", "roles": "witness"}),
    Route("admin.person", "GET", lambda ctr: f"/admin/people/{ctr.people['witness'].id}", admin_only(200)),
    admin_post("admin.add_role", lambda ctr: f"/admin/people/{ctr.people['witness'].id}/roles",
               lambda ctr: {"role": "expert_witness"}),
    admin_post("admin.deactivate", lambda ctr: f"/admin/people/{ctr.people['witness'].id}/close",
               lambda ctr: {"account_reason": "Left the centre"}),
    Route("admin.reactivate", "POST", lambda ctr: f"/admin/people/{ctr.extra.get('closed', NOBODY)}/reopen",
          admin_only(303), lambda ctr, role: {}, "AuditEntry", prepare=close_account),
    admin_post("admin.add_qualification", lambda ctr: f"/admin/people/{ctr.people['assessor_b'].id}/qualifications",
               lambda ctr: {"q_qualification_code": "D32_D33", "q_verified_on": today()}),
    admin_post("admin.add_competence", lambda ctr: f"/admin/people/{ctr.people['assessor_b'].id}/competence",
               lambda ctr: {"c_level": "competent", "c_area": "Adult social care",
                            "c_evidence": "Senior support worker, 8 years", "c_verified_on": today()}),
    admin_post("admin.approve_expert_witness", lambda ctr: f"/admin/people/{ctr.people['expert_witness'].id}"
                                                           "/expert-witness",
               lambda ctr: {"ew_working_knowledge": "Trained in person-centred tools",
                            "ew_occupational_competence": "Hospice nurse, 10 years",
                            "ew_evaluating_role": "Appraises hospice staff", "ew_assessment_qualification": "",
                            "ew_approved_on": today()}),
    admin_post("admin.add_iqa_qualification", lambda ctr: f"/admin/people/{ctr.people['iqa'].id}/iqa-qualifications",
               lambda ctr: {"iqa_qualification_code": "V1", "iqa_verified_on": today()}),
    admin_post("admin.set_lead_iqa", lambda ctr: f"/admin/people/{ctr.people['iqa'].id}/lead-iqa",
               lambda ctr: {"lead": "yes"}),
    admin_post("admin.withdraw", lambda ctr: f"/admin/people/{ctr.people['assessor_b'].id}/withdraw/"
                                             f"assessor_qualification/{ctr.extra['b_qualification']}",
               lambda ctr: {f"reason-{ctr.extra['b_qualification']}": "Certificate found to be forged."}),
    Route("admin.candidates", "GET", lambda ctr: "/admin/candidates", admin_only(200)),
    Route("admin.register", "GET", lambda ctr: "/admin/candidates/new", admin_only(200)),
    admin_post("admin.register", lambda ctr: "/admin/candidates/new",
               lambda ctr: {"new_name": "Nia New", "new_email": "nia@centre.test", "registration_number": "CG999999",
                            "date_of_birth": "1990-01-01", "registration_date": today(), "qualification": "3085-02",
                            "workplace": "Meadow View Care Home", "work_setting": "long_term_care",
                            "assessors": str(ctr.people["assessor_a"].id), "iqas": str(ctr.people["iqa"].id)}),
    Route("admin.candidate", "GET", lambda ctr: f"/admin/candidates/{ctr.c.id}", admin_only(200)),
    admin_post("admin.assign", lambda ctr: f"/admin/candidates/{ctr.d.id}/assign",
               lambda ctr: {"person": str(ctr.people["expert_witness"].id), "role": "expert_witness"}),
    admin_post("admin.unassign", lambda ctr: f"/admin/candidates/{ctr.c.id}/unassign/{ctr.extra['witness_on_c']}",
               lambda ctr: {}),
]

def quality_setup(centre: Centre, factory, session, answered: bool = False) -> None:
    """Give A's decisions on C, the IQA's strategy, a drawn sample, an action for A and a decision drawn after."""
    from tracker.services import assessment, quality

    a, iqa = centre.people["assessor_a"], centre.people["iqa"]
    item = factory.accepted(a, centre.c, "observation", criteria=[{"code": "1.1", "note": "Seen"},
                                                                   {"code": "1.2", "note": "Seen"},
                                                                   {"code": "1.3", "note": "Seen"}])
    for code in ("1.1", "1.2"):
        assessment.decide(session, factory.actor(a), centre.c.id, "002", code, "met", [item.id])
    strategy = quality.create_strategy(session, factory.actor(iqa), {
        "name": "Interim", "kind": "interim", "cycle_start": date.today() - timedelta(days=30),
        "cycle_end": date.today() + timedelta(days=30), "base_rate": 100})
    sample = quality.draw(session, factory.actor(iqa), strategy.id, 1)
    first, second = session.exec(select(SampleItem).where(SampleItem.sample_id == sample.id)
                                 .order_by(SampleItem.decision_id)).all()
    quality.review(session, factory.actor(iqa), second.id, "disagree", "The record does not show 1.2.", "",
                   "Re-observe 1.2", date.today() + timedelta(days=7))
    later = assessment.decide(session, factory.actor(a), centre.c.id, "002", "1.3", "met", [item.id])
    action = session.exec(select(IqaAction)).one()
    if answered:
        quality.respond(session, factory.actor(a), action.id, "Observed again on Friday.")
    session.commit()
    centre.extra |= {"strategy": strategy.id, "sample": sample.id, "item": first.id, "action": action.id,
                     "later": later.id}


def summative_setup(centre: Centre, factory, session) -> None:
    """Have A sign C's unit off and the IQA draw it into a summative sample."""
    from tracker.services import assessment, quality

    all_met(centre, factory, session)
    assessment.sign_off(session, factory.actor(centre.people["assessor_a"]), centre.c.id, "002",
                        declaration_signed=True)
    strategy = quality.create_strategy(session, factory.actor(centre.people["iqa"]), {
        "name": "Summative", "kind": "summative", "cycle_start": date.today() - timedelta(days=30),
        "cycle_end": date.today() + timedelta(days=30), "base_rate": 100})
    sample = quality.draw(session, factory.actor(centre.people["iqa"]), strategy.id, 1)
    session.commit()
    centre.extra["signoff_item"] = session.exec(select(SampleItem.id).where(SampleItem.sample_id == sample.id)).one()


def _q(key: str) -> Callable[[Centre], str]:
    return lambda ctr: str(ctr.extra.get(key, NOBODY_ID))


NOBODY_ID = "0190b6a4-1a2b-7c3d-8e4f-5a6b7c8d9e0f"  # a well-formed id that names no record
QA = {"iqa": 200}  # the IQA reads; an EQA only while a grant is in force (tests/web/test_quality.py)
IQA_WRITE = expect(403, iqa=303)
QUALITY_ROUTES = [
    Route("quality.index", "GET", lambda ctr: "/quality/", expect(403, **QA)),
    Route("quality.new_strategy", "GET", lambda ctr: "/quality/strategies/new", expect(403, iqa=200)),
    Route("quality.new_strategy", "POST", lambda ctr: "/quality/strategies/new", IQA_WRITE,
          lambda ctr, role: {"name": "Spring interim", "kind": "interim", "cycle_start": today(),
                             "cycle_end": today(), "base_rate": "20", "new_assessor_rate": "100",
                             "new_assessor_decisions": "10", "new_assessor_months": "12",
                             "disagreement_rate": "50", "new_site_rate": "50"}, "AuditEntry"),
    Route("quality.strategy", "GET", lambda ctr: f"/quality/strategies/{_q('strategy')(ctr)}", expect(403, **QA),
          prepare=quality_setup),
    Route("quality.draw", "POST", lambda ctr: f"/quality/strategies/{_q('strategy')(ctr)}/draw", IQA_WRITE,
          lambda ctr, role: {"seed": "7"}, "AuditEntry", prepare=quality_setup),
    Route("quality.coverage", "GET", lambda ctr: f"/quality/strategies/{_q('strategy')(ctr)}/coverage",
          expect(403, **QA), prepare=quality_setup),
    Route("quality.sample", "GET", lambda ctr: f"/quality/samples/{_q('sample')(ctr)}", expect(403, **QA),
          prepare=quality_setup),
    Route("quality.add_item", "POST", lambda ctr: f"/quality/samples/{_q('sample')(ctr)}/items", IQA_WRITE,
          lambda ctr, role: {"decision": str(ctr.extra.get("later", NOBODY_ID)), "reason": "Concern raised by the employer"},
          "AuditEntry", prepare=quality_setup),
    Route("quality.item", "GET", lambda ctr: f"/quality/items/{_q('item')(ctr)}", expect(403, **QA),
          prepare=quality_setup),
    Route("quality.item", "POST", lambda ctr: f"/quality/items/{_q('item')(ctr)}", IQA_WRITE,
          lambda ctr, role: {"verdict": "agree", "reasons": ""}, "AuditEntry", prepare=quality_setup),
    Route("quality.item", "GET", lambda ctr: f"/quality/items/{_q('signoff_item')(ctr)}", expect(403, **QA),
          prepare=summative_setup, label="sign-off"),
    Route("quality.item", "POST", lambda ctr: f"/quality/items/{_q('signoff_item')(ctr)}", IQA_WRITE,
          lambda ctr, role: {"verdict": "agree", "reasons": ""}, "AuditEntry", prepare=summative_setup,
          label="sign-off"),
    Route("quality.actions", "GET", lambda ctr: "/quality/actions", expect(200, eqa=403), prepare=quality_setup),
    Route("quality.respond", "POST", lambda ctr: f"/quality/actions/{_q('action')(ctr)}/respond",
          expect(403, assessor_a=303, assessor_b=404),
          lambda ctr, role: {"response": "Observed again on Friday."}, "AuditEntry", prepare=quality_setup),
    Route("quality.close", "POST", lambda ctr: f"/quality/actions/{_q('action')(ctr)}/close", IQA_WRITE,
          lambda ctr, role: {}, "AuditEntry",
          prepare=lambda ctr, factory, session: quality_setup(ctr, factory, session, answered=True)),
    Route("quality.report", "GET", lambda ctr: f"/quality/reports/{ctr.people['iqa'].id}", expect(403, **QA),
          prepare=quality_setup),
    Route("quality.report_pdf", "GET", lambda ctr: f"/quality/reports/{ctr.people['iqa'].id}.pdf",
          expect(403, **QA), prepare=quality_setup),
]


def grant_for_eqa(centre: Centre, factory, session) -> None:
    """Give the EQA inspection access to C, so the administrator can withdraw it."""
    from datetime import UTC, datetime

    from tracker.services import eqa

    start = datetime.now(UTC) - timedelta(days=1)
    row = eqa.grant(session, factory.as_admin, {
        "eqa_id": centre.people["eqa"].id, "candidate_ids": [centre.c.id], "starts_at": start,
        "ends_at": start + timedelta(days=7), "reason": "Standards verification visit"})
    session.commit()
    centre.extra["grant"] = row.id


INSPECTION_ROUTES = [
    Route("grants.index", "GET", lambda ctr: "/admin/eqa-access/", admin_only(200)),
    admin_post("grants.create", lambda ctr: "/admin/eqa-access/",
               lambda ctr: {"eqa_id": str(ctr.people["eqa"].id), "candidate_ids": str(ctr.c.id),
                            "starts_at": f"{today()}T09:00", "ends_at": f"{today()}T17:00",
                            "reason": "Standards verification visit"}),
    Route("grants.revoke", "POST", lambda ctr: f"/admin/eqa-access/{ctr.extra.get('grant', NOBODY)}/revoke",
          admin_only(303), lambda ctr, role: {"reason": "Visit moved"}, "AuditEntry", prepare=grant_for_eqa),
    # An EQA without a grant in force has nothing to inspect; the administrator sees the centre's records too.
    Route("inspection.index", "GET", lambda ctr: "/inspection/", expect(403, eqa=200)),
    Route("inspection.records", "GET", lambda ctr: "/inspection/records", admin_only(200)),
    Route("inspection.audit", "GET", lambda ctr: "/inspection/audit", admin_only(200)),
    Route("transfers.index", "GET", lambda ctr: "/admin/packs/", admin_only(200)),
    Route("transfers.upload", "POST", lambda ctr: "/admin/packs/", admin_only(422), lambda ctr, role: {}),
    Route("portfolio.pack", "GET", lambda ctr: f"/candidates/{ctr.c.id}/pack",
          when(**WHOLE, administrator=200, expert_witness=403, witness=403)),
]


DEVICE_ID = "01900000-0000-7000-8000-00000000d001"  # made on the device, so any fixed UUID will do


def field_device(centre: Centre, factory, session) -> None:
    """Give assessor A a signed-in field device to withdraw."""
    from datetime import timedelta as days

    from sync.centre.tokens import issue_token

    issue_token(session, centre.people["assessor_a"], DEVICE_ID, "Ann's tablet", 1, "0004", days(days=90))
    session.commit()


def withdrawn_device(centre: Centre, factory, session) -> None:
    """Give assessor A a field device the administrator has withdrawn."""
    from sync.centre.tokens import revoke

    field_device(centre, factory, session)
    revoke(session, factory.as_admin, DEVICE_ID, "Tablet lost on the bus")
    session.commit()


CONFLICT_ID = "01900000-0000-7000-8000-00000000c0f1"  # the item a device sent


def open_conflict(centre: Centre, factory, session) -> None:
    """Keep a change from assessor A's device that ran into a newer version of A's observation of C."""
    from tracker.models import SyncConflict

    field_device(centre, factory, session)
    current = evidence_service.current_version(session, centre.observation)
    session.add(SyncConflict(item_id=uuid.UUID(CONFLICT_ID), device_id=uuid.UUID(DEVICE_ID), user_id=centre.people["assessor_a"].id,
                             evidence_id=centre.observation.id, candidate_id=centre.c.id, kind="evidence.revise",
                             base_hash="0" * 64, centre_hash=current.content_hash, centre_version=current.number,
                             proposed={"content": {"title": "Changed on the tablet", "narrative": "Offline words."}}))
    session.commit()


# Conflicts are listed to their assessor (and expert witnesses, who also record on devices) and the administrator.
CONFLICT_VIEWERS = {"administrator": 200, "assessor_a": 200, "assessor_b": 200, "expert_witness": 200}

DEVICE_ROUTES = [
    Route("devices.index", "GET", lambda ctr: "/admin/devices/", admin_only(200), prepare=field_device),
    Route("devices.revoke", "POST", lambda ctr: f"/admin/devices/{DEVICE_ID}/revoke", admin_only(303),
          lambda ctr, role: {f"reason-{DEVICE_ID}": "Tablet lost on the bus"}, "AuditEntry", prepare=field_device),
    Route("devices.allow", "POST", lambda ctr: f"/admin/devices/{DEVICE_ID}/allow", admin_only(303),
          lambda ctr, role: {}, "AuditEntry", prepare=withdrawn_device),
    Route("conflicts.index", "GET", lambda ctr: "/conflicts/", expect(403, **CONFLICT_VIEWERS), prepare=open_conflict),
    Route("conflicts.detail", "GET", lambda ctr: f"/conflicts/{CONFLICT_ID}",
          expect(404, administrator=200, assessor_a=200), prepare=open_conflict),
]

NEW_PASSWORD = {"current": "correct horse battery", "password": "a brand new passphrase",
                "confirm": "a brand new passphrase"}
ROUTES = [
    Route("auth.login", "GET", lambda ctr: "/auth/login", expect(200, signed_out=200)),
    Route("auth.password", "GET", lambda ctr: "/auth/password", expect(200)),
    Route("auth.password", "POST", lambda ctr: "/auth/password", expect(303), lambda ctr, role: NEW_PASSWORD,
          "AuditEntry"),
    Route("auth.login", "POST", lambda ctr: "/auth/login", expect(302, signed_out=401),
          lambda ctr, role: {"email": ctr.people[role].email if role in ctr.people else "nobody@centre.test",
                             "password": "correct horse battery"}),
    Route("auth.logout", "POST", lambda ctr: "/auth/logout", expect(302), lambda ctr, role: {}),
    Route("home.index", "GET", lambda ctr: "/", expect(200)),
    Route("caseload.index", "GET", lambda ctr: "/caseload/", expect(200)),
    Route("portfolio.mine", "GET", lambda ctr: "/portfolio", expect(404, candidate_c=302, candidate_d=302)),
    Route("portfolio.detail", "GET", lambda ctr: f"/candidates/{ctr.c.id}",
          when(**WHOLE, expert_witness=200, witness=200)),
    Route("portfolio.decide", "POST", lambda ctr: f"/candidates/{ctr.c.id}/criteria/2.1/decision",
          when(assessor_a=303, iqa=403, expert_witness=403, witness=403, candidate_c=403),
          lambda ctr, role: {"outcome": "not_met", "note": "Needs an observation of 2.1"}, "CriterionDecision"),
    *_capture_routes(),
    Route("evidence.detail", "GET", lambda ctr: f"/evidence/{ctr.observation.id}", when(**WHOLE, **ALONE),
          label="observation by A"),
    Route("evidence.detail", "GET", lambda ctr: f"/evidence/{ctr.testimony.id}",
          when(**WHOLE, **ALONE | {"witness": 200}), label="testimony by the witness"),
    Route("evidence.detail", "GET", lambda ctr: f"/evidence/{ctr.work_product.id}", when(**WHOLE, **ALONE),
          label="work product by C"),
    Route("evidence.submit", "POST", lambda ctr: f"/evidence/{ctr.draft.id}/submit",
          when(**ALONE, candidate_c=303, assessor_a=403, iqa=403), lambda ctr, role: {}, "drafts"),
    Route("evidence.sign", "POST", lambda ctr: f"/evidence/{ctr.observation.id}/sign",
          when(**ALONE, candidate_c=303, assessor_a=303, iqa=403),
          lambda ctr, role: {"kind": "countersignature", "signature_name": "Cara Candidate"}, "Signature"),
    Route("evidence.review", "POST", lambda ctr: f"/evidence/{ctr.observation.id}/review",
          when(**ALONE, assessor_a=303, iqa=403, candidate_c=403),
          lambda ctr, role: {"outcome": "accepted", "feedback": "Clear, person-centred practice."}, "EvidenceReview"),
    Route("evidence.revise", "GET", lambda ctr: f"/evidence/{ctr.work_product.id}/revise",
          when(**ALONE, candidate_c=200, assessor_a=403, iqa=403)),
    Route("evidence.revise", "POST", lambda ctr: f"/evidence/{ctr.work_product.id}/revise",
          when(**ALONE, candidate_c=303, assessor_a=403, iqa=403), revise_body, "EvidenceVersion"),
    Route("assessment.sign_off", "GET", lambda ctr: f"/candidates/{ctr.c.id}/sign-off",
          when(assessor_a=200, iqa=403, expert_witness=403, witness=403, candidate_c=403)),
    Route("assessment.sign_off", "POST", lambda ctr: f"/candidates/{ctr.c.id}/sign-off",
          when(assessor_a=303, iqa=403, expert_witness=403, witness=403, candidate_c=403),
          lambda ctr, role: {"declaration": "yes"}, "UnitSignOff", prepare=all_met),
    Route("files.download", "GET", lambda ctr: f"/files/{ctr.photo_sha}/{ctr.photo_name}", when(**WHOLE, **ALONE)),
    *ADMIN_ROUTES,
    *QUALITY_ROUTES,
    *INSPECTION_ROUTES,
    *DEVICE_ROUTES,
]
# An EQA account is read-only everywhere: every write (all but signing in and out) is refused before anything else.
ROUTES = [Route(r.endpoint, r.method, r.path, r.statuses | {"eqa": 403}, r.body, r.writes, r.prepare, r.label)
          if r.method != "GET" and not r.endpoint.startswith("auth.") else r for r in ROUTES]

# Two EQAs on a visit in force: one granted C (whose records the routes name), one granted only D. Every quality
# assurance route, the inspection pages and C's own records answer each as their grant allows; writes stay refused.
INSPECTORS = ("eqa_granted", "eqa_other")
INSPECTED = {  # route id: (EQA granted C, EQA granted only D)
    "GET quality.index": (200, 200), "GET quality.new_strategy": (403, 403), "POST quality.new_strategy": (403, 403),
    "GET quality.strategy": (200, 404), "POST quality.draw": (403, 403), "GET quality.coverage": (200, 404),
    "GET quality.sample": (200, 404), "POST quality.add_item": (403, 403), "GET quality.item": (200, 404),
    "POST quality.item": (403, 403), "GET quality.item sign-off": (200, 404), "POST quality.item sign-off": (403, 403),
    "GET quality.actions": (200, 200), "POST quality.respond": (403, 403), "POST quality.close": (403, 403),
    "GET quality.report": (200, 200), "GET quality.report_pdf": (200, 200),
    "GET inspection.index": (200, 200), "GET inspection.records": (200, 200), "GET inspection.audit": (200, 200),
    "GET portfolio.detail": (200, 404), "GET evidence.detail observation by A": (200, 404),
    "GET portfolio.pack": (200, 404), "GET files.download": (200, 404),
}
ROUTES = [Route(r.endpoint, r.method, r.path, r.statuses | dict(zip(INSPECTORS, INSPECTED[r.id], strict=True)),
                r.body, r.writes, r.prepare, r.label) if r.id in INSPECTED else r for r in ROUTES]
CASES = [pytest.param(route, role, id=f"{route.id}-{role}") for route in ROUTES
         for role in ROLES + (INSPECTORS if route.id in INSPECTED else ())]

# The sync API does not use the session cookie: its routes authenticate a device's bearer token, so the roles
# above do not apply to them. They are covered here by `test_api_ignores_the_session_cookie` (every signed-in
# role gets 401 token_invalid from every token route, the open ones answer alike for everyone), and their
# token scoping in tests/sync/test_api_*.py (enrolment by role, revoked and expired tokens, another assessor's
# candidates and files).
API_ROUTES = {  # endpoint, method: path, and the status any browser session gets
    ("api.openapi_document", "GET"): ("/api/openapi.json", 200),
    ("api.hello", "GET"): ("/api/v1/hello", 200),
    ("api.enrol", "POST"): ("/api/v1/devices", 400),
    ("api.push", "POST"): ("/api/v1/push", 401),
    ("api.pull", "GET"): ("/api/v1/pull", 401),
    ("api.upload_state", "GET"): ("/api/v1/uploads/" + "a" * 64, 401),
    ("api.upload_part", "PUT"): ("/api/v1/uploads/" + "a" * 64 + "?size=1&offset=0", 401),
    ("api.media", "GET"): ("/api/v1/media/" + "a" * 64, 401),
    ("api.receipts_check", "POST"): ("/api/v1/receipts", 401),
}


# --- Tests --------------------------------------------------------------------------------------------------------


def _rules(app) -> set[tuple[str, str]]:
    return {(rule.endpoint, method) for rule in app.url_map.iter_rules() if rule.endpoint != "static"
            for method in rule.methods - {"HEAD", "OPTIONS"}}


def test_every_route_has_an_expectation(app, centre):
    """Every route and method of the app has a row in the matrix, and every row reaches the route it names."""
    covered = {(route.endpoint, route.method) for route in ROUTES} | set(API_ROUTES)
    assert sorted(_rules(app) - covered) == [], "routes without permission tests: add them to ROUTES"
    adapter = app.url_map.bind("localhost")
    for route in ROUTES:
        endpoint, _ = adapter.match(route.path(centre), method=route.method)
        assert endpoint == route.endpoint, route.id


@pytest.mark.parametrize("role", ROLES)
def test_api_ignores_the_session_cookie(client, session, centre, as_role, role):
    """A browser session grants nothing on the sync API: token routes answer 401, open ones the same to all."""
    as_role(role)
    before = snapshot(session)
    headers = {"X-Tracker-Protocol": "1", "X-Tracker-Schema": "0001"}
    for (endpoint, method), (path, status) in API_ROUTES.items():
        answer = client.open(path, method=method, headers=headers, json={} if method != "GET" else None)
        assert answer.status_code == status, (endpoint, role, answer.get_data(as_text=True))
        if status == 401:
            assert answer.json["error"] == "token_invalid"
    assert snapshot(session) == before


@pytest.mark.parametrize("route, role", CASES)
def test_permission_matrix(client, session, factory, centre, as_role, route, role):
    """Each role gets the status its relationship to C allows; a refused request writes nothing."""
    if route.prepare:
        route.prepare(centre, factory, session)
    token = as_role(role)
    before = snapshot(session)
    if route.method == "GET":
        response = client.get(route.path(centre))
    else:
        response = client.post(route.path(centre), data=route.body(centre, role) | {"csrf_token": token})
    response.close()  # a sent file stays open until the response is closed, as a WSGI server would
    expected = route.statuses[role]
    assert response.status_code == expected, response.get_data(as_text=True)[:2000]
    if role == "signed_out" and expected == 302:
        assert response.headers["Location"].startswith("/auth/login")
    after = snapshot(session)
    if role in INSPECTORS and route.method == "GET":  # every page an EQA opens on a visit is logged, nothing else
        assert after.pop("AuditEntry") == before.pop("AuditEntry") + 1
    if route.writes and expected == 303:
        assert after[route.writes] != before[route.writes], f"{route.writes} not written"
    elif route.endpoint != "auth.login":
        assert after == before, "a refused or read-only request wrote to the database"


@pytest.mark.parametrize("route", [pytest.param(r, id=r.id) for r in ROUTES if r.statuses["signed_out"] == 302])
def test_signed_out_htmx_request_told_to_sign_in(client, centre, as_role, route):
    """A signed-out htmx request to any protected route gets HX-Redirect to the sign-in page."""
    token = as_role("signed_out")
    headers = {"HX-Request": "true"}
    if route.method == "GET":
        response = client.get(route.path(centre), headers=headers)
    else:
        response = client.post(route.path(centre), data=route.body(centre, "signed_out") | {"csrf_token": token},
                               headers=headers)
    assert response.headers["HX-Redirect"].startswith("/auth/login")


def test_limited_view_shows_only_own_evidence(client, centre, as_role):
    """A witness sees their own testimony on C's page, and neither C's work product nor A's observation."""
    as_role("witness")
    page = client.get(f"/candidates/{centre.c.id}").get_data(as_text=True)
    assert "Testimony from the night shift" in page
    assert "One-page profile" not in page and "Observed care planning" not in page and "Draft support plan" not in page


@pytest.mark.parametrize("role, visible, hidden", [
    ("assessor_a", "Cara Candidate", "Dan Candidate"),
    ("assessor_b", "Dan Candidate", "Cara Candidate"),
    ("iqa", "Cara Candidate", "Dan Candidate"),
])
def test_caseload_lists_only_attached_candidates(client, centre, as_role, role, visible, hidden):
    """A caseload lists the candidates the person is attached to, and no one else."""
    as_role(role)
    page = client.get("/caseload/").get_data(as_text=True)
    assert visible in page and hidden not in page


@pytest.mark.parametrize("role", ["eqa", "administrator", "candidate_d"])
def test_unconnected_people_see_no_caseload(client, centre, as_role, role):
    """Someone attached to no candidate sees an empty caseload, never C."""
    as_role(role)
    page = client.get("/caseload/").get_data(as_text=True)
    assert "No candidates are assigned to you yet" in page and "Cara Candidate" not in page




@pytest.mark.parametrize("path", [
    "/candidates/not-a-uuid", f"/candidates/{NOBODY}", "/evidence/42", f"/evidence/{NOBODY}",
    f"/evidence/{NOBODY}/revise", f"/candidates/{NOBODY}/sign-off", f"/files/{'0' * 64}/x.pdf",
    "/files/not-a-hash/x.pdf", f"/candidates/{NOBODY}/evidence/new/observation",
])
def test_unknown_records_are_not_found(client, centre, as_role, path):
    """A malformed or unknown id is a 404 page, never a 500."""
    as_role("assessor_a")
    response = client.get(path)
    assert response.status_code == 404 and "Not found" in response.get_data(as_text=True)


def test_files_served_to_readers_are_the_stored_bytes(app, client, centre, as_role):
    """The file C attached is served whole to C's assessor, as an image, with a sandboxing CSP."""
    as_role("assessor_a")
    with client.get(f"/files/{centre.photo_sha}/{centre.photo_name}") as response, \
            app.extensions["storage"].open(centre.photo_sha) as stored:
        assert response.status_code == 200 and response.mimetype == "image/jpeg"  # the photo, re-encoded clean
        assert response.data == stored.read()
    assert "sandbox" in response.headers["Content-Security-Policy"]


@pytest.mark.parametrize("role", ["assessor_b", "iqa", "candidate_c"])
def test_post_without_csrf_token_refused(client, session, centre, as_role, role):
    """A review posted without a CSRF token is refused before any permission is looked at."""
    as_role(role)
    before = snapshot(session)
    response = client.post(f"/evidence/{centre.observation.id}/review", data={"outcome": "accepted"})
    assert response.status_code == 400 and "Form expired" in response.get_data(as_text=True)
    assert snapshot(session) == before


@pytest.mark.parametrize("copy", ["original", "thumb"])
def test_another_persons_file_cannot_be_attached_by_its_hash(client, session, centre, as_role, copy):
    """Candidate D who knows the hash of C's photo (or of its thumbnail) cannot attach it, so cannot download it."""
    token = as_role("candidate_d")
    sha = centre.photo_sha if copy == "original" else media.derived_sha256(session, centre.photo_sha, "thumb")
    before = snapshot(session)
    response = client.post(f"/candidates/{centre.d.id}/evidence/new/work_product", data={
        "csrf_token": token, "title": "Borrowed profile", "activity_date": activity_day(), "narrative": "Not mine.",
        "criteria": "2.1", "kept": f"{sha}|mine.jpg", "action": "submit"})
    assert response.status_code == 422
    assert "An attached file has not been uploaded yet" in response.get_data(as_text=True)
    assert snapshot(session) == before
    with client.get(f"/files/{sha}/mine.jpg") as download:
        assert download.status_code == 404
