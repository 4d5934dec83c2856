"""The field devices page in a real browser: accessible, and a device revoked with the keyboard alone."""
import uuid
from datetime import timedelta

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402

from browser_support import check, error_summary, sign_in  # noqa: E402
from sync.centre.tokens import issue_token  # noqa: E402
from tracker.models import Device  # noqa: E402


def test_administrator_revokes_a_lost_tablet(page, factory, session):
    """The list passes axe; an empty reason is refused beside the field; a reason withdraws the device."""
    ann = factory.assessor(name="Ann Assessor")
    tablet, _token = issue_token(session, ann, uuid.uuid4(), "Ann's tablet", 1, "0004", timedelta(days=90))
    issue_token(session, factory.expert_witness(name="Eve Expert"), uuid.uuid4(), "Eve's phone", 1, "0004",
                timedelta(days=90))
    admin = factory.admin
    session.commit()

    sign_in(page, admin.email)
    page.goto("/admin/devices/")
    expect(page.get_by_role("heading", name="Field devices")).to_be_visible()
    expect(page.get_by_role("row", name="Ann's tablet")).to_contain_text("Ann Assessor")
    check(page)
    page.get_by_text("Revoke “Ann's tablet”").focus()
    page.keyboard.press("Enter")  # opens the details
    page.get_by_role("button", name="Revoke").first.click()
    expect(error_summary(page)).to_contain_text("Give the reason")
    check(page)
    expect(page.get_by_label("Why its access is withdrawn").first).to_be_visible()  # left open, beside its error
    page.get_by_label("Why its access is withdrawn").first.fill("Left on the bus")
    page.get_by_label("Why its access is withdrawn").first.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_text("Access withdrawn from “Ann's tablet”")).to_be_visible()
    expect(page.get_by_role("row", name="Ann's tablet")).to_contain_text("Left on the bus")
    check(page)
    session.expire_all()
    assert session.get(Device, tablet.id).revoked_reason == "Left on the bus"
