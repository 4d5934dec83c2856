"""The assessor in a real browser on a tablet: record an observation, accept it, judge a criterion, sign off."""
import re
from datetime import date, timedelta

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402

from browser_support import (  # noqa: E402
    OUTCOME_1, check, criterion, draw_signature, error_summary, grid_row, open_outcome, photo, sign_in,
    status_of,
)


def test_assessor_records_observation_then_judges_a_criterion(page, factory, session, tmp_path):
    """Observation with three criteria, notes, a photo and the candidate's drawn countersignature; accepted, then
    one criterion judged met in place on the grid."""
    assessor = factory.assessor(name="Asha Okafor")
    factory.candidate(assessors=(assessor,), name="Cara Jones")
    session.commit()
    when = date.today() - timedelta(days=3)

    sign_in(page, assessor.email)
    page.get_by_role("link", name="Caseload").click()
    expect(page.get_by_role("heading", level=1, name="Caseload")).to_be_visible()
    check(page)
    page.get_by_role("link", name="Cara Jones").click()
    expect(page.get_by_role("heading", level=1, name="Cara Jones")).to_be_visible()
    check(page)
    portfolio_url = page.url

    page.get_by_role("link", name="Record an observation").click()
    expect(page.get_by_role("heading", level=1, name=re.compile("Record an observation"))).to_be_visible()
    check(page)
    page.get_by_label("Title", exact=True).fill("Person-centred review with Mrs B")
    page.get_by_label("Date of the activity").fill(when.isoformat())
    page.get_by_label("Real work setting").select_option("long_term_care")
    page.get_by_label("What was seen").fill("Cara used a relationship circle with Mrs B and agreed outcomes.")
    open_outcome(page, OUTCOME_1)
    notes = {"1.2": "Asked Mrs B first", "1.3": "Agreed outcomes together", "1.1": "Named choice and rights"}
    for code, note in notes.items():
        criterion(page, code).check()
        page.get_by_label(f"How it shows {code}").fill(note)
    page.get_by_label("Photos of work products").set_input_files(photo(tmp_path))
    draw_signature(page)
    expect(page.locator('input[name="countersignature_image"]')).to_have_value(re.compile("^data:image/png;base64,"))
    check(page)
    page.get_by_role("button", name="Submit for assessment").click()

    expect(page.get_by_role("heading", level=1, name="Person-centred review with Mrs B")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Submitted for assessment.")).to_be_visible()
    covered = page.locator("ul.criteria-covered > li")
    expect(covered).to_have_count(3)
    for code, note in notes.items():
        expect(covered.filter(has_text=code)).to_contain_text(note)
    expect(page.get_by_role("link", name="one-page-profile.jpg", exact=True)).to_be_visible()
    expect(page.get_by_role("img", name="Photo: one-page-profile.jpg (opens larger)")).to_be_visible()
    signatures = page.locator("ul.signatures > li")
    expect(signatures).to_have_count(2)
    expect(signatures.filter(has_text="countersignature")).to_contain_text("Cara Jones")
    expect(signatures.filter(has_text="observer")).to_contain_text("Asha Okafor")
    check(page)

    page.get_by_role("link", name="Back to Cara Jones's portfolio").click()
    for code in notes:
        row = grid_row(page, code)
        expect(status_of(row)).to_have_text("Evidence submitted")
        expect(row.get_by_role("link", name="Person-centred review with Mrs B")).to_be_visible()
    check(page)

    grid_row(page, "1.2").get_by_role("link", name="Person-centred review with Mrs B").click()
    page.get_by_label("Developmental feedback").fill("Clear record of shared decision-making.")
    page.get_by_role("button", name="Accept", exact=True).click()
    expect(page.get_by_role("status").filter(has_text="Decision recorded.")).to_be_visible()
    check(page)

    page.get_by_role("link", name="Back to Cara Jones's portfolio").click()
    expect(page).to_have_url(portfolio_url)
    page.wait_for_load_state()  # htmx has taken over the grid's buttons: a click now judges in place
    page.evaluate("window.stillTheSamePage = true")
    row = grid_row(page, "1.2")
    row.get_by_role("button", name="Met", exact=True).click()
    expect(status_of(row)).to_have_text("Met")
    assert page.url == portfolio_url
    assert page.evaluate("window.stillTheSamePage === true"), "the grid should update in place, not reload the page"
    expect(row.get_by_role("button", name="Met", exact=True)).to_be_focused()  # focus not lost with the old grid
    expect(page.locator("#grid-status")).to_have_text("1.2 judged met.")  # a status message for screen readers
    expect(status_of(grid_row(page, "1.3"))).to_have_text("Evidence submitted")
    check(page)


def test_sign_off_refused_until_ready_then_signed(page, factory, session):
    """Blockers listed and the declaration refused for a candidate not ready; signed off for one who is."""
    assessor = factory.assessor(name="Asha Okafor")
    early = factory.candidate(assessors=(assessor,), name="Gus Hale")
    ready = factory.candidate(assessors=(assessor,), name="Hana Cole")
    factory.accepted(assessor, early, criteria=[{"code": "2.1", "note": "Seen"}])
    factory.all_met(assessor, ready)
    session.commit()

    sign_in(page, assessor.email)
    page.goto(f"/candidates/{early.id}")
    check(page)
    page.get_by_role("link", name="Sign Unit 002 off").click()
    expect(page.get_by_role("heading", level=1, name="Sign off Unit 002 for Gus Hale")).to_be_visible()
    blockers = page.locator("#blockers > li")
    expect(blockers.first).to_contain_text("assessment criteria are not yet met")
    expect(page.get_by_role("button", name="Sign Unit 002 off")).to_have_accessible_description(
        re.compile("not yet met"))
    check(page)
    page.get_by_label("I make this declaration").check()
    page.get_by_role("button", name="Sign Unit 002 off").click()
    expect(error_summary(page)).to_contain_text("Unit 002 cannot be signed off yet.")
    expect(page.get_by_role("heading", level=1, name="Sign off Unit 002 for Gus Hale")).to_be_visible()
    check(page)

    page.goto(f"/candidates/{ready.id}")
    check(page)
    page.get_by_role("link", name="Sign Unit 002 off").click()
    expect(page.locator("#blockers")).to_have_count(0)
    check(page)
    page.get_by_label("I make this declaration").check()
    page.get_by_role("button", name="Sign Unit 002 off").click()
    expect(page.get_by_role("heading", level=1, name="Hana Cole")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Unit 002 is signed off and locked.")).to_be_visible()
    expect(page.get_by_text(re.compile(r"Unit 002 was signed off on \d"))).to_be_visible()
    expect(page.get_by_role("link", name="Sign Unit 002 off")).to_have_count(0)
    check(page)
