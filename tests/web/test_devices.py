"""The administrator's field devices page: who has which device, when it was last seen, and revoking one."""
import html as markup
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import event
from sqlmodel import select

from support.web import form_token
from sync.centre.tokens import authenticate, issue_token
from tracker.errors import Refusal
from tracker.models import AuditEntry, Device, utcnow


@pytest.fixture
def as_admin(backend, client, sign_in, session, factory):
    """A client signed in as the administrator."""
    admin = factory.admin
    session.commit()
    sign_in(admin)
    return client


def enrol(session, user, name: str = "Field tablet") -> tuple[Device, str]:  # noqa: ANN001
    """Register a device for a person, as signing in on it does."""
    device, token = issue_token(session, user, uuid.uuid4(), name, 1, "0004", timedelta(days=90))
    session.commit()
    return device, token


def post(client, path: str, data: dict):  # noqa: ANN001, ANN201
    """Post a form with the CSRF token a browser would send."""
    token = form_token(client.get("/auth/login").get_data(as_text=True))
    return client.post(path, data=data | {"csrf_token": token})


def text(response) -> str:  # noqa: ANN001
    """Return a response's body as text, entities decoded."""
    return markup.unescape(response.get_data(as_text=True))


def test_page_lists_each_persons_devices(as_admin, session, factory):
    """Name, owner, when signed in, last seen, last push, and whether access was withdrawn."""
    ann = factory.assessor(name="Ann Assessor")
    eve = factory.expert_witness(name="Eve Expert")
    tablet, token = enrol(session, ann, "Ann's tablet")
    enrol(session, eve, "Eve's phone")
    authenticate(session, token, utcnow())
    session.commit()
    page = text(as_admin.get("/admin/devices/"))
    assert "Ann's tablet" in page and "Eve's phone" in page and "Ann Assessor" in page and "Eve Expert" in page
    assert page.count("Never") >= 2  # Eve's phone never seen; neither device has pushed
    assert "Revoke “Ann's tablet”" in page and "Active" in page


def test_revoking_a_device_withdraws_its_token_and_is_audited(as_admin, session, factory):
    """Revoke: the device's next request is refused as revoked, the reason is kept and audited."""
    ann = factory.assessor(name="Ann Assessor")
    tablet, token = enrol(session, ann, "Ann's tablet")
    answer = post(as_admin, f"/admin/devices/{tablet.id}/revoke", {f"reason-{tablet.id}": "Lost on the bus"})
    assert answer.status_code == 303
    page = text(as_admin.get("/admin/devices/"))
    assert "Access withdrawn from “Ann's tablet”" in page and "Withdrawn" in page and "Lost on the bus" in page
    session.expire_all()
    assert session.get(Device, tablet.id).revoked_reason == "Lost on the bus"
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "device.revoked")).one()
    assert entry.entity_id == str(tablet.id) and entry.details["reason"] == "Lost on the bus"
    with pytest.raises(Refusal) as refused:
        authenticate(session, token, utcnow())
    assert refused.value.code == "token_revoked"


def test_revoking_without_a_reason_is_refused_beside_the_field(as_admin, session, factory):
    """An empty reason: 422, the message beside the field, the device untouched."""
    tablet, _token = enrol(session, factory.assessor())
    answer = post(as_admin, f"/admin/devices/{tablet.id}/revoke", {f"reason-{tablet.id}": "  "})
    assert answer.status_code == 422
    assert "Give the reason for withdrawing" in text(answer)
    session.expire_all()
    assert session.get(Device, tablet.id).revoked_at is None


@pytest.mark.parametrize("device_id", ["not-a-uuid", "01900000-0000-7000-8000-0000000000aa"])
def test_unknown_device_is_404(as_admin, device_id):
    """A forged or unknown device id: 404."""
    assert post(as_admin, f"/admin/devices/{device_id}/revoke", {}).status_code == 404


def test_htmx_request_gets_the_list_alone(as_admin, session, factory):
    """One URL, two renders: an in-page htmx request gets only the list."""
    enrol(session, factory.assessor(), "Ann's tablet")
    fragment = text(as_admin.get("/admin/devices/", headers={"HX-Request": "true"}))
    assert fragment.lstrip().startswith('<div id="devices"') and "<html" not in fragment
    assert "<html" in text(as_admin.get("/admin/devices/"))


def test_queries_do_not_grow_with_the_number_of_devices(app, as_admin, session, factory):
    """The page loads devices and their owners in a fixed number of queries."""
    def count() -> int:
        statements = []
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        event.listen(app.extensions["engine"], "before_cursor_execute", listener)
        try:
            assert as_admin.get("/admin/devices/").status_code == 200
        finally:
            event.remove(app.extensions["engine"], "before_cursor_execute", listener)
        return len(statements)

    enrol(session, factory.assessor())
    few = count()
    for _ in range(5):
        enrol(session, factory.assessor())
    assert count() == few
