"""EQA inspection access: granted by the administrator for a set time, read-only everywhere, ended by itself,
every page logged; the centre records and audit trail pages."""
import io
import re
import zipfile
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, text
from sqlmodel import select

from support.factories import NOW
from support.web import form_token
from tracker.models import (
    AuditEntry,
    Candidate,
    CriterionDecision,
    EqaGrant,
    EqaGrantCandidate,
    Evidence,
    EvidenceReview,
    EvidenceVersion,
    Role,
    Signature,
    User,
)
from tracker.services import assessment, eqa, pack

START = (NOW - timedelta(days=3)).replace(hour=9, minute=0, second=0)
END = START + timedelta(days=7, hours=8)
ENDED = f"{END:%-d %B %Y}, 17:00:00 UTC"  # as the pages write the end of the grant
COUNTED = (EqaGrant, EqaGrantCandidate, Evidence, EvidenceVersion, EvidenceReview, CriterionDecision, Signature,
           AuditEntry, Candidate, User)


class Visit:
    """A small centre with an EQA granted access to C (not D) from START to END."""

    def __init__(self, clock, session, factory):
        self.clock = clock
        self.assessor = factory.assessor(name="Ann Assessor")
        self.eqa = factory.user(Role.EQA, name="Ezra External")
        self.c = factory.candidate(name="Cara Candidate", assessors=(self.assessor,))
        self.d = factory.candidate(name="Dan Candidate", assessors=(self.assessor,))
        self.observation = factory.capture(self.assessor, self.c, "observation", title="Observed care planning")
        factory.capture(self.assessor, self.d, "observation", title="Dan's observation")
        self.grant = eqa.grant(session, factory.as_admin, {
            "eqa_id": self.eqa.id, "candidate_ids": [self.c.id], "starts_at": START, "ends_at": END,
            "reason": "Standards verification visit"})
        session.commit()
        self.admin = factory.admin

    def at(self, moment: datetime) -> None:
        """Hold the clock (the tracker's and the tests') at a moment."""
        self.clock.move_to(moment, tick=False)  # held still: a test at the very second the grant ends


@pytest.fixture
def visit(time_machine, session, factory):
    """The centre, with the clock in the middle of the grant."""
    v = Visit(time_machine, session, factory)
    v.at(START + timedelta(days=1))
    return v


def counts(session) -> dict[str, int]:
    """Count the rows a refused request must not add."""
    session.commit()
    return {m.__name__: session.exec(select(func.count()).select_from(m)).one() for m in COUNTED}


def test_eqa_reads_granted_portfolio_without_controls(client, sign_in, session, visit):
    """The EQA's landing lists C only; C's grid and evidence open with no judge, sign or decide controls."""
    sign_in(visit.eqa)
    landing = client.get("/inspection/").get_data(as_text=True)
    assert "Cara Candidate" in landing and "Dan Candidate" not in landing
    assert ENDED in landing
    grid = client.get(f"/candidates/{visit.c.id}")
    page = grid.get_data(as_text=True)
    assert grid.status_code == 200 and "Observed care planning" in page
    assert "/decision" not in page and "Record an observation" not in page and "Download the portfolio pack" in page
    evidence = client.get(f"/evidence/{visit.observation.id}").get_data(as_text=True)
    assert "Observed care planning" in evidence
    assert not re.search(r'<form method="post" action="/evidence/', evidence)
    assert client.get(f"/candidates/{visit.d.id}").status_code == 404  # not granted


def test_every_page_the_eqa_opens_is_logged(client, sign_in, session, visit):
    """Each page the EQA opens becomes an eqa.viewed audit entry with its path, shown on the audit trail."""
    sign_in(visit.eqa)
    client.get(f"/candidates/{visit.c.id}")
    client.get(f"/evidence/{visit.observation.id}")
    session.commit()
    viewed = session.exec(select(AuditEntry).where(AuditEntry.action == "eqa.viewed").order_by(AuditEntry.seq)).all()
    assert [e.details["path"] for e in viewed] == [f"/candidates/{visit.c.id}", f"/evidence/{visit.observation.id}"]
    assert all(e.candidate_id == visit.c.id and e.actor_id == visit.eqa.id for e in viewed)
    trail = client.get(f"/inspection/audit?candidate={visit.c.id}").get_data(as_text=True)
    assert f"/evidence/{visit.observation.id}" in trail and "eqa.viewed" in trail


@pytest.mark.parametrize("offset, status", [(-1, 200), (0, 200), (1, 403)], ids=["end-1s", "at-end", "end+1s"])
def test_access_ends_by_itself(client, sign_in, visit, offset, status):
    """Access works at ends_at − 1 s and is refused, on every page, one second after, with the clear message."""
    sign_in(visit.eqa)
    visit.at(END + timedelta(seconds=offset))
    for path in (f"/candidates/{visit.c.id}", "/inspection/", "/inspection/records", "/", "/caseload/"):
        response = client.get(path)
        assert response.status_code == status, path
        if status == 403:
            assert (f"Your inspection access ended at {ENDED}; ask the centre to extend it"
                    in response.get_data(as_text=True))


def test_access_before_it_starts_opens_nothing(client, sign_in, visit):
    """Before the grant starts, C's portfolio is not found and the landing says nothing is in force."""
    visit.at(START - timedelta(seconds=1))  # time runs forwards: the EQA signs in before the grant starts
    sign_in(visit.eqa)
    assert client.get(f"/candidates/{visit.c.id}").status_code == 404
    assert "No inspection access is in force" in client.get("/inspection/").get_data(as_text=True)


def test_withdrawn_access_is_refused(client, sign_in, session, visit, factory):
    """The administrator withdraws access; the EQA's next page says so."""
    sign_in(visit.admin)
    token = form_token(client.get("/admin/eqa-access/").get_data(as_text=True))
    response = client.post(f"/admin/eqa-access/{visit.grant.id}/revoke", data={"reason": "Visit moved",
                                                                               "csrf_token": token})
    assert response.status_code == 303
    client.post("/auth/logout", data={"csrf_token": token})
    sign_in(visit.eqa)
    page = client.get(f"/candidates/{visit.c.id}")
    assert page.status_code == 403 and "withdrawn" in page.get_data(as_text=True)


def _value(name: str, visit: Visit) -> str:
    return {"candidate_id": str(visit.c.id), "evidence_id": str(visit.observation.id), "user_id": str(visit.eqa.id),
            "grant_id": str(visit.grant.id), "code": "2.1", "method": "observation"}.get(name, "x")


def test_every_write_route_refused_for_an_eqa(app, client, sign_in, session, visit):
    """Every non-GET route in the app (but signing out) answers 403 to an EQA in force, and writes nothing."""
    sign_in(visit.eqa)
    token = form_token(client.get("/inspection/").get_data(as_text=True))
    adapter = app.url_map.bind("localhost")
    writes = [(rule.endpoint, method, rule) for rule in app.url_map.iter_rules()
              for method in rule.methods - {"GET", "HEAD", "OPTIONS"}
              # The device API answers bearer tokens, not browser sessions (tests/web/test_permissions.py).
              if not rule.endpoint.startswith(("auth.", "api."))]
    assert len(writes) >= 15
    before = counts(session)
    for endpoint, method, rule in writes:
        path = adapter.build(endpoint, {a: _value(a, visit) for a in rule.arguments}, method=method)
        response = client.open(path, method=method, data={"csrf_token": token, "outcome": "met"})
        assert response.status_code == 403, (endpoint, method)
        assert "read-only" in response.get_data(as_text=True)
    assert counts(session) == before


GRANT_START, GRANT_END = NOW.replace(hour=9, minute=0, second=0), (NOW + timedelta(days=5)).replace(hour=17, minute=0,
                                                                                                   second=0)
GOOD = {"starts_at": f"{GRANT_START:%Y-%m-%dT%H:%M}", "ends_at": f"{GRANT_END:%Y-%m-%dT%H:%M}",
        "reason": "Standards verification"}


@pytest.mark.parametrize("change, field, message", [
    ({"ends_at": f"{GRANT_START - timedelta(hours=1):%Y-%m-%dT%H:%M}"}, "ends_at", "The access must end after it starts."),
    ({"ends_at": f"{GRANT_START + timedelta(days=731):%Y-%m-%dT%H:%M}"}, "ends_at", "Grant access for 366 days at most"),
    ({"starts_at": "next tuesday"}, "starts_at", "Enter when the access starts as a date and time"),
    ({"ends_at": ""}, "ends_at", "Enter when the access ends."),
    ({"candidate_ids": "0190b6a4-1a2b-7c3d-8e4f-5a6b7c8d9e0f"}, "candidate_ids", "is not registered at this centre"),
    ({"candidate_ids": "not-an-id"}, "candidate_ids", "is not registered at this centre"),
    ({"candidate_ids": None}, "candidate_ids", "Choose at least one candidate."),
    ({"eqa_id": "ASSESSOR"}, "eqa_id", "Choose a person who holds the EQA role."),
    ({"eqa_id": "0190b6a4-1a2b-7c3d-8e4f-5a6b7c8d9e0f"}, "eqa_id", "Choose a person who holds the EQA role."),
    ({"eqa_id": "'; drop table"}, "eqa_id", "Choose the EQA to grant access to."),
    ({"reason": "   "}, "reason", "Reason"),
], ids=["ends-before-starts", "too-long", "bad-start", "no-end", "unknown-candidate", "forged-candidate",
        "no-candidate", "not-an-eqa", "unknown-person", "forged-person", "no-reason"])
def test_bad_grant_form_is_a_clear_form_error(client, sign_in, session, visit, change, field, message):
    """Bad input on the grant form comes back beside its field, with nothing stored."""
    sign_in(visit.admin)
    token = form_token(client.get("/admin/eqa-access/").get_data(as_text=True))
    data = GOOD | {"eqa_id": str(visit.eqa.id), "candidate_ids": str(visit.c.id), "csrf_token": token} | change
    if data.get("eqa_id") == "ASSESSOR":
        data["eqa_id"] = str(visit.assessor.id)
    data = {k: v for k, v in data.items() if v is not None}
    before = counts(session)
    response = client.post("/admin/eqa-access/", data=data)
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and message in page and "There is a problem" in page
    assert counts(session) == before


def test_good_grant_is_stored_and_listed(client, sign_in, session, visit):
    """A good grant is stored with who granted it and why, audited, and listed in force."""
    sign_in(visit.admin)
    token = form_token(client.get("/admin/eqa-access/").get_data(as_text=True))
    response = client.post("/admin/eqa-access/", data=GOOD | {
        "eqa_id": str(visit.eqa.id), "candidate_ids": [str(visit.c.id), str(visit.d.id)], "csrf_token": token})
    assert response.status_code == 303
    session.commit()
    row = session.exec(select(EqaGrant).where(EqaGrant.reason == "Standards verification")).one()
    assert row.granted_by_id == visit.admin.id and row.ends_at.replace(tzinfo=UTC) == GRANT_END
    assert set(session.exec(select(EqaGrantCandidate.candidate_id).where(EqaGrantCandidate.grant_id == row.id))) == {
        visit.c.id, visit.d.id}
    assert session.exec(select(AuditEntry).where(AuditEntry.action == "eqa.granted",
                                                 AuditEntry.entity_id == str(row.id))).one()
    assert "Standards verification" in client.get("/admin/eqa-access/").get_data(as_text=True)


def test_records_page_shows_credentials_and_iqa_decisions(client, sign_in, visit):
    """The centre records page shows staff credentials to the EQA."""
    sign_in(visit.eqa)
    page = client.get("/inspection/records").get_data(as_text=True)
    assert "Assessor qualifications" in page and "Ann Assessor" in page and "Expert-witness approvals" in page
    assert "IQA decisions" in page


def test_records_page_lists_iqa_reviews_of_decisions_and_sign_offs(client, sign_in, session, factory, visit):
    """The IQA decisions list shows reviews of decisions and of unit sign-offs; the EQA sees only the granted
    candidate's, the administrator every candidate's."""
    iqa = factory.user(Role.IQA, name="Ida Iqa")
    for candidate in (visit.c, visit.d):
        factory.all_met(visit.assessor, candidate)
        signoff = assessment.sign_off(session, factory.actor(visit.assessor), candidate.id, "002", True)
        assessment.iqa_review_sign_off(session, factory.actor(iqa), signoff.id, "disagree",
                                       f"Sign-off of {candidate.registration_number} rests on a thin 4.3.")
    decision = session.exec(select(CriterionDecision).where(CriterionDecision.candidate_id == visit.c.id).order_by(
        CriterionDecision.decided_at, CriterionDecision.id)).first()
    assessment.iqa_review(session, factory.actor(iqa), decision.id, "agree", "")
    session.commit()
    sign_in(visit.eqa)
    page = client.get("/inspection/records").get_data(as_text=True)
    assert "Cara Candidate, Unit 002 sign-off" in page and f"{visit.c.registration_number} rests on a thin" in page
    assert "Cara Candidate, 1.1" in page and "agree (Ida Iqa" in page
    assert "Dan Candidate" not in page and visit.d.registration_number not in page
    client.post("/auth/logout", data={"csrf_token": form_token(page)})
    sign_in(visit.admin)
    page = client.get("/inspection/records").get_data(as_text=True)
    assert "Cara Candidate, Unit 002 sign-off" in page and "Dan Candidate, Unit 002 sign-off" in page
    assert page.count("disagree (Ida Iqa") == 2


def test_audit_trail_is_filtered_paged_and_shows_the_chain(client, sign_in, session, engine, visit, monkeypatch):
    """The EQA's trail holds C's and the centre's entries, never D's; it pages; it shows the chain's state."""
    from tracker.web import inspection

    monkeypatch.setattr(inspection, "PAGE_SIZE", 5)
    sign_in(visit.eqa)
    first = client.get("/inspection/audit").get_data(as_text=True)
    assert "Chain intact:" in first and "page 1 of" in first and "Older entries" in first
    shown = set(re.findall(r'<th scope="row">(\d+)</th>', first))
    d_entries = {str(s) for s in session.exec(select(AuditEntry.seq).where(AuditEntry.candidate_id == visit.d.id))}
    assert shown and not shown & d_entries
    forged = client.get(f"/inspection/audit?candidate={visit.d.id}&page=abc").get_data(as_text=True)
    assert not set(re.findall(r'<th scope="row">(\d+)</th>', forged)) & d_entries
    session.commit()
    _unguarded(engine, "UPDATE auditentry SET action = 'tampered' WHERE seq = 2")
    broken = client.get("/inspection/audit").get_data(as_text=True)
    assert "Chain broken: entry 2 (tampered) has been changed" in broken


def _unguarded(engine, statement):
    """Run a statement with the database's append-only guard lifted, as someone editing the file would."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE auditentry DISABLE TRIGGER auditentry_append_only"))
            conn.execute(text(statement))
            conn.execute(text("ALTER TABLE auditentry ENABLE TRIGGER auditentry_append_only"))
        else:
            conn.execute(text("DROP TRIGGER auditentry_no_update"))
            conn.execute(text(statement))


def test_eqa_downloads_a_verifying_pack(client, sign_in, visit):
    """A granted EQA downloads C's pack, and it verifies."""
    sign_in(visit.eqa)
    response = client.get(f"/candidates/{visit.c.id}/pack")
    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert "attachment" in response.headers["Content-Disposition"]
    report = pack.verify(io.BytesIO(response.data))
    assert report.ok and report.manifest["candidate"]["name"] == "Cara Candidate"
    assert zipfile.ZipFile(io.BytesIO(response.data)).read("summary.pdf").startswith(b"%PDF")
    assert client.get(f"/candidates/{visit.d.id}/pack").status_code == 404


# --- The administrator's import page ---------------------------------------------------------------------------

from sqlmodel import Session  # noqa: E402
from test_pack import _grid, receiving  # noqa: E402, F401  (the second centre a learner moves from)

from support.factories import Factory  # noqa: E402
from tracker.audit import SYSTEM  # noqa: E402
from tracker.services import people  # noqa: E402
from tracker.storage import LocalStorage  # noqa: E402


def _upload(client, sign_in, admin, data: bytes | None, name: str = "pack.zip"):
    sign_in(admin)
    token = form_token(client.get("/admin/packs/").get_data(as_text=True))
    files = {"pack": (io.BytesIO(data), name)} if data is not None else {}
    return client.post("/admin/packs/", data={"csrf_token": token} | files, content_type="multipart/form-data")


@pytest.mark.parametrize("data, message", [(None, "Choose the pack"), (b"not a zip", "not a zip archive")],
                         ids=["no-file", "not-a-zip"])
def test_import_page_refuses_bad_uploads(client, sign_in, session, visit, data, message):
    """No file, or a file that is not a pack, is a clear form error with nothing stored."""
    before = counts(session)
    response = _upload(client, sign_in, visit.admin, data)
    assert response.status_code == 422 and message in response.get_data(as_text=True)
    assert counts(session) == before


def test_import_page_brings_a_learner_in_once(app, client, sign_in, session, factory, receiving, tmp_path):  # noqa: F811
    """A pack from another centre is imported with the same grid; uploading it again is refused."""
    with Session(receiving, expire_on_commit=False) as other:
        sender = Factory(other, factory.today)
        sender._admin = people.create_user(other, SYSTEM, {  # the sending centre's own administrator
            "email": "admin@hillside.test", "name": "Hal Hillside", "password": "correct horse battery",
            "roles": [Role.ADMINISTRATOR]})
        assessor = sender.assessor(name="Sol Sender")
        moving = sender.candidate(name="Mo Mover", assessors=(assessor,))
        sender.accepted(assessor, moving)
        other.commit()
        body = pack.to_bytes(other, LocalStorage(tmp_path / "sender-media"), moving, "Hillside College")
        expected = _grid(other, moving.id)
    admin = factory.admin
    session.commit()
    response = _upload(client, sign_in, admin, body)
    assert response.status_code == 303, response.get_data(as_text=True)[:1500]
    session.commit()
    assert _grid(session, moving.id) == expected
    before = counts(session)
    again = client.post("/admin/packs/", data={"csrf_token": form_token(client.get("/admin/packs/").get_data(
        as_text=True)), "pack": (io.BytesIO(body), "pack.zip")}, content_type="multipart/form-data")
    assert again.status_code == 422 and "already in this tracker" in again.get_data(as_text=True)
    assert counts(session) == before
