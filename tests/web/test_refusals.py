"""Clumsy and hostile requests to the pages and the sync API get a clear 4xx answer, never a 500, on SQLite and
PostgreSQL: bodies over a route's limit refused before they are read, NUL in any field named beside the field,
personal pages kept out of shared caches, the API's refusals as its document says."""
import base64
import io
from datetime import timedelta

import pytest
from PIL import Image
from sqlmodel import func, select

from support.factories import TODAY
from support.web import form_token
from tracker.models import AuditEntry, Evidence, User

KB, MB = 1024, 1024 * 1024


@pytest.fixture
def people_(backend, session, factory):
    """An assessor with a candidate and a submitted observation; the administrator."""
    assessor = factory.assessor(name="Ann Assessor")
    candidate = factory.candidate(name="Cara Candidate", assessors=(assessor,))
    item = factory.capture(assessor, candidate, "observation", title="Observed care planning")
    factory.admin
    session.commit()
    return assessor, candidate, item


def _signed_in(client, user) -> str:  # noqa: ANN001
    token = form_token(client.get("/auth/login").get_data(as_text=True))
    assert client.post("/auth/login", data={"email": user.email, "password": "correct horse battery",
                                            "csrf_token": token}).status_code == 302
    return form_token(client.get("/").get_data(as_text=True))


class Endless(io.RawIOBase):
    """A request body that counts what is read of it (and would go on for ever)."""

    def __init__(self):
        self.read_bytes = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:  # noqa: ANN001
        buffer[:] = b"a" * len(buffer)
        self.read_bytes += len(buffer)
        return len(buffer)


def _send_endless(client, path: str, length: int, content_type: str):  # noqa: ANN001, ANN202
    """POST a body that claims `length` bytes and would go on for ever; return the answer and the body."""
    body = Endless()
    answer = client.post(path, content_type=content_type,
                         environ_overrides={"wsgi.input": body, "CONTENT_LENGTH": str(length)})
    return answer, body


def test_a_huge_sign_in_body_is_refused_before_it_is_read(client, backend):
    """A 400 MB url-encoded sign-in is answered 413 from its Content-Length alone: not one byte is read."""
    answer, body = _send_endless(client, "/auth/login", 400 * MB, "application/x-www-form-urlencoded")
    assert answer.status_code == 413 and body.read_bytes == 0
    assert "Too large to send" in answer.get_data(as_text=True)


@pytest.mark.parametrize(("path", "limit"), [("/auth/login", 16 * KB), ("/admin/eqa-access/", 2 * MB),
                                             ("/api/v1/devices", 16 * KB), ("/api/v1/push", 32 * MB)])
def test_each_route_reads_at_most_its_own_limit(client, backend, path, limit):
    """Forms without files take small bodies; only the upload routes take large ones."""
    answer, body = _send_endless(client, path, limit + 1, "application/json")
    assert answer.status_code == 413 and body.read_bytes == 0


def test_a_form_over_the_limit_gets_a_page_saying_so(client, people_):
    """A form field too large for the page is a 413 page that says what happened, not Werkzeug's bare page."""
    assessor, candidate, item = people_
    token = _signed_in(client, assessor)
    answer = client.post(f"/evidence/{item.id}/review", data={"outcome": "referred", "feedback": "x" * (3 * MB),
                                                              "csrf_token": token})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 413 and "none of it was saved" in page and "<h1>Too large to send</h1>" in page


def _signature() -> str:
    """Return a drawn signature as a browser's canvas sends it: a PNG data URL, 450 KB of PNG (600 KB as sent)."""
    out = io.BytesIO()
    Image.frombytes("RGB", (256, 600), bytes(range(256)) * 1800).save(out, "PNG", compress_level=0)
    return "data:image/png;base64," + base64.b64encode(out.getvalue()).decode()


def test_a_drawn_signature_up_to_its_own_limit_reaches_it(client, people_, session):
    """A countersignature drawn on the screen, 450 KB of PNG (600 KB as sent), is taken, not refused as too large."""
    assessor, candidate, item = people_
    token = _signed_in(client, session.get(User, candidate.user_id))
    data_url = _signature()
    assert 500_000 < len(data_url) < 2 * MB
    answer = client.post(f"/evidence/{item.id}/sign", data={"kind": "countersignature", "csrf_token": token,
                                                            "signature_image": data_url})
    assert answer.status_code == 303, answer.get_data(as_text=True)[:500]


def test_a_decision_on_an_unknown_criterion_says_so(client, people_):
    """Judging a criterion the unit does not have is a 422 whose page says which, not a page with no message."""
    assessor, candidate, _ = people_
    token = _signed_in(client, assessor)
    answer = client.post(f"/candidates/{candidate.id}/criteria/9.9/decision", data={"outcome": "met",
                                                                                     "csrf_token": token})
    assert answer.status_code == 422 and "Unit 002 has no criterion 9.9" in answer.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/", "/caseload/", "/auth/login", "/candidates/{c}", "/evidence/{e}"])
def test_pages_with_personal_data_are_never_stored_by_caches(client, people_, path):
    """Every page answers Cache-Control: no-store, so a shared computer's browser keeps no copy."""
    assessor, candidate, item = people_
    _signed_in(client, assessor)
    answer = client.get(path.format(c=candidate.id, e=item.id))
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"


def test_static_files_may_still_be_cached(client, backend):
    """The stylesheet is not personal and keeps its normal caching."""
    with client.get("/static/tracker.css") as answer:
        assert answer.status_code == 200 and answer.headers.get("Cache-Control") != "no-store"


@pytest.mark.parametrize(("path", "method", "allowed"), [
    ("/api/v1/push", "GET", {"OPTIONS", "POST"}), ("/api/v1/hello", "POST", {"GET", "HEAD", "OPTIONS"}),
    ("/api/v1/uploads/" + "a" * 64, "POST", {"GET", "HEAD", "OPTIONS", "PUT"})])
def test_the_sync_api_says_which_methods_are_allowed(client, backend, path, method, allowed):
    """A 405 from the sync API is JSON and carries Allow, as HTTP requires."""
    answer = client.open(path, method=method, headers={"X-Tracker-Protocol": "1", "X-Tracker-Schema": "0012"})
    assert answer.status_code == 405 and answer.json["error"] == "method_not_allowed"
    assert set(answer.headers["Allow"].replace(" ", "").split(",")) == allowed


# --- NUL in the pages' forms (a 500 on PostgreSQL before) ---------------------------------------------------------------


def _evidence_form() -> dict:
    return {"title": "Review meeting", "activity_date": (TODAY - timedelta(days=3)).isoformat(), "action": "submit",
            "setting": "long_term_care", "narrative": "Supported Mr K to lead his review.", "criteria": "3.1",
            "note-3.1": "Led by the person"}


@pytest.mark.parametrize("field", ["title", "narrative", "setting_detail"])
def test_nul_on_the_evidence_form_is_named_beside_the_field(client, session, people_, field):
    """NUL in a field of the capture form: 422, the message beside that field, the form filled in, nothing stored."""
    assessor, candidate, _ = people_
    token = _signed_in(client, assessor)
    before = session.exec(select(func.count()).select_from(Evidence)).one()
    answer = client.post(f"/candidates/{candidate.id}/evidence/new/observation",
                         data=_evidence_form() | {field: "Mrs B\x00", "csrf_token": token})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422 and f'id="{field}-error"' in page and "U+0000" in page
    assert "Supported Mr K to lead his review." in page or field == "narrative"
    session.commit()
    assert session.exec(select(func.count()).select_from(Evidence)).one() == before


def test_nul_in_the_sign_in_email_is_a_wrong_address(client, people_):
    """The unauthenticated sign-in form with NUL in the email: the usual refusal, never a 500."""
    token = form_token(client.get("/auth/login").get_data(as_text=True))
    answer = client.post("/auth/login", data={"email": "ann\x00@centre.test", "password": "x", "csrf_token": token})
    assert answer.status_code == 401 and "email address or password is not right" in answer.get_data(as_text=True)


@pytest.mark.parametrize(("field", "value", "message"), [
    ("name", "Nell\x00", "U+0000"), ("email", "nell\u200b@centre.test", "U+200B"),
    ("email", "<b>nell</b>@centre.test", "U+003C"), ("roles", "candidate", "registered")])
def test_add_a_person_refuses_what_should_never_be_stored(client, session, people_, field, value, message):
    """Add a person: NUL, a zero-width or markup character in the email, and "candidate" as a role are refused
    beside their fields; no account is made."""
    token = _signed_in(client, _admin(session))
    data = {"name": "Nell New", "email": "nell@centre.test", "roles": "witness"} | {field: value, "csrf_token": token}
    answer = client.post("/admin/people/new", data=data)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422 and f'id="{field}-error"' in page and message in page
    assert session.exec(select(func.count()).select_from(User).where(User.name == "Nell New")).one() == 0


def _admin(session) -> User:  # noqa: ANN001
    return session.exec(select(User).where(User.email == "admin@centre.test")).one()


def test_a_date_of_birth_of_year_one_is_refused(client, session, people_):
    """Registering a candidate born on 0001-01-01 is refused beside the date of birth."""
    token = _signed_in(client, _admin(session))
    answer = client.post("/admin/candidates/new", data={
        "new_name": "Nia New", "new_email": "nia@centre.test", "registration_number": "CG999999",
        "date_of_birth": "0001-01-01", "registration_date": TODAY.isoformat(), "qualification": "3085-02",
        "workplace": "Meadow View", "work_setting": "long_term_care", "csrf_token": token})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422 and 'id="date_of_birth-error"' in page and "1 January 1900" in page


def test_a_strategy_ending_in_9999_is_refused_on_the_form(client, session, factory, people_):
    """The strategy form refuses a cycle ending 9999-12-31 beside the field; nothing is saved."""
    from tracker.models import Role

    iqa = factory.user(Role.IQA)
    session.commit()
    token = _signed_in(client, iqa)
    before = session.exec(select(func.count()).select_from(AuditEntry)).one()
    answer = client.post("/quality/strategies/new", data={
        "name": "Forever", "kind": "interim", "cycle_start": TODAY.isoformat(), "cycle_end": "9999-12-31",
        "base_rate": "10", "csrf_token": token})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 422 and 'id="cycle_end-error"' in page and "31 December 2100" in page
    session.commit()
    assert session.exec(select(func.count()).select_from(AuditEntry)).one() == before


# --- The sync API ------------------------------------------------------------------------------------------------


HEADERS = {"X-Tracker-Protocol": "1", "X-Tracker-Schema": "0012"}


def test_nul_in_enrolment_is_refused_not_a_500(client, people_):
    """Device enrolment with NUL in the email or a lone surrogate in the password: 401, never a 500."""
    for body in ({"email": "ann\x00@centre.test", "password": "x" * 12}, {"email": people_[0].email,
                                                                          "password": "\ud800" * 12}):
        answer = client.post("/api/v1/devices", json=body | {"device_id": "0190b6a4-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
                                                             "name": "Tablet"}, headers=HEADERS)
        assert answer.status_code == 401 and answer.json["error"] == "bad_credentials"


def test_nul_in_a_device_name_is_named(client, people_):
    """A device named with NUL in it is refused with code invalid_text naming the field."""
    answer = client.post("/api/v1/devices", json={"email": people_[0].email, "password": "correct horse battery",
                                                  "device_id": "0190b6a4-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
                                                  "name": "Ann\x00's tablet"}, headers=HEADERS)
    assert answer.status_code == 400 and answer.json["error"] == "invalid_text" and answer.json["field"] == "name"


def test_enrolment_is_limited_per_account_with_retry_after(client, people_):
    """Ten wrong passwords from a device, then the right one from another address: 429 with Retry-After."""
    for n in range(10):
        client.post("/api/v1/devices", json={"email": people_[0].email, "password": "wrong password",
                                             "device_id": "0190b6a4-1a2b-7c3d-8e4f-5a6b7c8d9e0f", "name": "Tablet"},
                    headers=HEADERS, environ_base={"REMOTE_ADDR": f"192.0.2.{n}"})
    answer = client.post("/api/v1/devices", json={"email": people_[0].email, "password": "correct horse battery",
                                                  "device_id": "0190b6a4-1a2b-7c3d-8e4f-5a6b7c8d9e0f",
                                                  "name": "Tablet"}, headers=HEADERS,
                         environ_base={"REMOTE_ADDR": "198.51.100.1"})
    assert answer.status_code == 429 and answer.json["error"] == "rate_limited"
    assert int(answer.headers["Retry-After"]) > 0
