"""The EQA's read-only visit in a real browser, and the administrator's grant page, checked by axe-core."""
import re
from datetime import UTC, datetime, timedelta

import pytest

from tracker.models import Role
from tracker.services import eqa

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402

from browser_support import check, error_summary, sign_in  # noqa: E402


@pytest.fixture
def inspected(factory, session):
    """A centre where an EQA holds a week's access to Cara's portfolio, which has an observation."""
    assessor = factory.assessor(name="Ann Assessor")
    inspector = factory.user(Role.EQA, name="Ezra External")
    cara = factory.candidate(name="Cara Candidate", assessors=(assessor,))
    observation = factory.capture(assessor, cara, "observation", title="Observed care planning")
    start = datetime.now(UTC) - timedelta(days=1)
    eqa.grant(session, factory.as_admin, {"eqa_id": inspector.id, "candidate_ids": [cara.id], "starts_at": start,
                                          "ends_at": start + timedelta(days=7), "reason": "Standards verification"})
    session.commit()
    return inspector, cara, observation


def test_eqa_read_only_visit(page, inspected):
    """Sign in as the EQA; open the landing page, the granted grid, an evidence page, the records and the trail."""
    inspector, cara, observation = inspected
    sign_in(page, inspector.email)
    page.get_by_role("link", name="Inspection").click()
    expect(page.get_by_role("heading", level=1, name="Inspection")).to_be_visible()
    check(page)
    page.get_by_role("link", name="Open Cara Candidate's portfolio").click()
    expect(page.get_by_role("heading", level=1, name="Cara Candidate")).to_be_visible()
    expect(page.get_by_role("button", name=re.compile("Met|Not yet", re.I))).to_have_count(0)
    expect(page.get_by_role("link", name="Record an observation")).to_have_count(0)
    check(page)
    page.goto(f"/evidence/{observation.id}")
    expect(page.get_by_role("heading", level=1, name=re.compile("Observed care planning"))).to_be_visible()
    expect(page.get_by_role("button", name=re.compile(r"^(Accept|Refer|Sign(?! out))", re.I))).to_have_count(0)
    check(page)
    page.goto("/inspection/")
    page.get_by_role("link", name="Centre records").click()
    expect(page.get_by_role("heading", level=1, name="Centre records")).to_be_visible()
    expect(page.get_by_role("cell", name="Ann Assessor").or_(page.get_by_role("rowheader", name="Ann Assessor"))
           .first).to_be_visible()
    check(page)
    page.get_by_role("link", name="Audit trail").click()
    expect(page.get_by_role("status").filter(has_text="Chain intact")).to_be_visible()
    page.get_by_label("Candidate").select_option(label="Cara Candidate")
    page.get_by_role("button", name="Show").click()
    expect(page.get_by_role("cell", name=f"/evidence/{observation.id}")).to_be_visible()
    check(page)


def test_grant_page_refusal_is_accessible(page, inspected, factory, session):
    """The administrator's grant page, and its refusal when the access ends before it starts, pass axe-core."""
    inspector = inspected[0]
    sign_in(page, factory.admin.email)
    page.goto("/admin/eqa-access/")
    check(page)
    page.get_by_label("EQA").select_option(label=f"Ezra External ({inspector.email})")
    page.get_by_label("Cara Candidate").check()
    page.get_by_label("Starts (UTC)").fill("2026-11-24T09:00")
    page.get_by_label("Ends (UTC)").fill("2026-11-23T09:00")
    page.get_by_label("Reason", exact=True).fill("Standards verification")
    page.get_by_role("button", name="Grant access").click()
    expect(error_summary(page)).to_contain_text("The access must end after it starts.")
    expect(page.get_by_label("Ends (UTC)")).to_have_attribute("aria-invalid", "true")
    check(page)
