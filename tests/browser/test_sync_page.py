"""A field device's Sync page in a real browser: accessible with a parked item, discarded with the keyboard alone."""
import sys
from pathlib import Path

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402
from sqlmodel import Session, select  # noqa: E402

from browser_support import check, sign_in  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "sync"))
from device_support import InProcessCentre, make_device  # noqa: E402
from support.factories import TODAY  # noqa: E402
from sync_support import register  # noqa: E402
from tracker.audit import Actor  # noqa: E402
from tracker.models import AssessorQualification, AuditEntry, OutboxItem, User  # noqa: E402
from tracker.services import evidence as service  # noqa: E402


@pytest.fixture
def app(session, factory, tmp_path):
    """The tracker on an assessor's field device, with one observation waiting and the centre in process."""
    from tracker import create_app

    assessor = factory.assessor(name="Ann Assessor")
    candidate = factory.candidate(assessors=(assessor,))
    device = register(session, assessor)
    session.commit()
    engine = make_device(tmp_path, session, device)
    with Session(engine, expire_on_commit=False) as s:
        service.capture(s, Actor(s.get(User, assessor.id), today=TODAY),
                        factory.evidence_data(candidate, "observation", title="Review with Mrs B"))
        s.commit()
    for row in session.exec(select(AssessorQualification).where(AssessorQualification.user_id == assessor.id)):
        session.delete(row)  # withdrawn on the centre meanwhile
    session.commit()
    app = create_app({"TESTING": True, "SECRET_KEY": "device", "FIELD_MODE": True, "SYNC_IN_BACKGROUND": False,
                      "DATABASE_URL": str(engine.url)}, instance=tmp_path / "device")
    app.extensions["sync_transport"] = InProcessCentre(session.get_bind(), device.id, TODAY)
    app.extensions["assessor"] = assessor
    yield app
    app.extensions["engine"].dispose()
    engine.dispose()


def test_assessor_sees_why_an_item_was_refused_and_discards_it(page, app):
    sign_in(page, app.extensions["assessor"].email)
    expect(page.get_by_role("complementary", name="Sync with the centre")).to_contain_text("1 item not yet")
    page.goto("/sync/")
    check(page)
    page.get_by_role("button", name="Sync now").click()
    expect(page.get_by_text("need your attention below")).to_be_visible()
    expect(page.get_by_role("row", name="Review with Mrs B")).to_contain_text("observer_not_eligible")
    check(page)
    page.get_by_label("I understand this item will not be sent").focus()
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_text("A copy is kept in this device's audit log")).to_be_visible()
    expect(page.get_by_text("Nothing is waiting")).to_be_visible()
    check(page)
    with Session(app.extensions["engine"]) as s:
        assert s.exec(select(OutboxItem.state)).one() == "discarded"
        assert s.exec(select(AuditEntry).where(AuditEntry.action == "sync.discarded")).one()
