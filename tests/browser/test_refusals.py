"""Refusals in a real browser: shown beside the field and in the error summary, with nothing typed lost."""
import re
from datetime import date, timedelta

import pytest

from tracker.models import Role

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402

from browser_support import (  # noqa: E402
    OUTCOME_1, OUTCOME_2, check, criterion, email_of, error_summary, open_outcome, pdf, sign_in,
)


def test_work_from_before_registration_refused_beside_the_date(page, factory, session, tmp_path):
    """Prior learning (RPL): the refusal sits beside the date and in the summary, and nothing typed is lost."""
    candidate = factory.candidate(assessors=(factory.assessor(),), name="Eli Moss")
    session.commit()
    before = candidate.registration_date - timedelta(days=30)

    sign_in(page, email_of(session, candidate))
    page.goto(f"/candidates/{candidate.id}/evidence/new/work_product")
    check(page)
    page.get_by_label("Title", exact=True).fill("Support plan from my last job")
    page.get_by_label("Date of the activity").fill(before.isoformat())
    page.get_by_label("Real work setting").select_option("long_term_care")
    page.get_by_label("Description", exact=True).fill("A support plan I wrote before I registered.")
    open_outcome(page, OUTCOME_2)
    criterion(page, "2.4").check()
    page.get_by_label("How it shows 2.4").fill("Whole plan")
    page.get_by_label("Files").set_input_files(pdf(tmp_path))
    page.get_by_label("I declare that this is my own work").check()
    page.get_by_role("button", name="Submit for assessment").click()

    summary = error_summary(page)
    expect(summary).to_contain_text("before the candidate's registration")
    expect(summary).to_be_focused()  # a keyboard or screen-reader user lands on what to correct
    expect(summary.get_by_role("link", name=re.compile("RPL is not allowed"))).to_have_attribute(
        "href", "#activity_date")
    date_field = page.get_by_label("Date of the activity")
    expect(page.locator("#activity_date-error")).to_be_visible()
    expect(page.locator("#activity_date-error")).to_contain_text("RPL is not allowed")
    expect(date_field).to_have_accessible_description(re.compile("RPL is not allowed"))
    expect(date_field).to_have_attribute("aria-invalid", "true")
    expect(date_field).to_have_value(before.isoformat())
    expect(page.get_by_label("Title", exact=True)).to_have_value("Support plan from my last job")
    expect(page.get_by_label("Real work setting")).to_have_value("long_term_care")
    expect(page.get_by_label("Description", exact=True)).to_have_value("A support plan I wrote before I registered.")
    expect(criterion(page, "2.4")).to_be_checked()
    expect(page.get_by_label("How it shows 2.4")).to_have_value("Whole plan")
    expect(page.get_by_role("checkbox", name="support-plan.pdf")).to_be_checked()  # the upload is kept
    expect(page.get_by_label("I declare that this is my own work")).to_be_checked()
    check(page)


def test_plain_witness_cannot_record_an_observation(page, factory, session):
    """A witness who tries to record an observation is told that what they saw is witness testimony."""
    witness = factory.user(Role.WITNESS, name="Sam Patel")
    candidate = factory.candidate(assessors=(factory.assessor(),), witnesses=(witness,), name="Fay Lee")
    session.commit()

    sign_in(page, witness.email)
    page.goto(f"/candidates/{candidate.id}")
    expect(page.get_by_role("heading", level=1, name="Fay Lee")).to_be_visible()
    expect(page.get_by_role("link", name="Record an observation")).to_have_count(0)
    check(page)
    page.goto(f"/candidates/{candidate.id}/evidence/new/observation")
    check(page)
    page.get_by_label("Title", exact=True).fill("Fay's review meeting")
    page.get_by_label("Date of the activity").fill((date.today() - timedelta(days=2)).isoformat())
    page.get_by_label("Real work setting").select_option("long_term_care")
    page.get_by_label("What was seen").fill("Fay led the review and Mrs B chose the actions.")
    open_outcome(page, OUTCOME_1)
    criterion(page, "1.3").check()
    page.get_by_role("button", name="Submit for assessment").click()

    summary = error_summary(page)
    expect(summary).to_contain_text("Sam Patel is a witness, not an assessor or expert witness")
    link = summary.get_by_role("link", name=re.compile("witness testimony"))
    expect(page.locator(link.get_attribute("href"))).to_contain_text("record it as witness testimony instead")
    expect(page.locator(link.get_attribute("href"))).to_be_visible()
    expect(page.get_by_label("Title", exact=True)).to_have_value("Fay's review meeting")
    expect(criterion(page, "1.3")).to_be_checked()
    check(page)
