"""The IQA in a real browser on a tablet: make a strategy, draw a sample, open an item, disagree, raise an action;
and the same for a sampled unit sign-off."""
import re
from datetime import date, timedelta

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402

from browser_support import check, error_summary, sign_in  # noqa: E402
from tracker.models import Role  # noqa: E402
from tracker.services import assessment  # noqa: E402


def test_iqa_samples_reviews_and_raises_an_action(page, factory, session):
    """Strategy with the default rates, a seeded draw, a refused disagreement without reasons, then one with
    reasons and an action that appears on the assessor's caseload; axe-core finds nothing on any page."""
    iqa = factory.user(Role.IQA, name="Ida Iqa")
    assessor = factory.assessor(name="Ann Assessor")
    candidate = factory.candidate(name="Cara Jones", assessors=(assessor,), iqas=(iqa,))
    factory.all_met(assessor, candidate)
    session.commit()

    sign_in(page, iqa.email)
    page.get_by_role("link", name="Quality assurance").click()
    expect(page.get_by_role("heading", level=1, name="Quality assurance")).to_be_visible()
    check(page)
    page.get_by_role("link", name="New sampling strategy").click()
    check(page)
    page.get_by_label("Name").fill("Autumn interim")
    page.get_by_label("Cycle starts").fill((date.today() - timedelta(days=30)).isoformat())
    page.get_by_label("Routine rate (percent of decisions)").fill("150")
    page.get_by_role("button", name="Save strategy").click()
    expect(error_summary(page)).to_contain_text("between 0 and 100")
    check(page)
    page.get_by_label("Routine rate (percent of decisions)").fill("25")
    page.get_by_role("button", name="Save strategy").click()
    expect(page.get_by_role("heading", level=1, name="Sampling plan: Autumn interim")).to_be_visible()
    check(page)

    page.get_by_label("Seed").fill("2026")
    page.get_by_role("button", name="Draw sample").click()
    expect(page.get_by_role("heading", level=1, name="Sample drawn with seed 2026")).to_be_visible()
    expect(page.get_by_role("cell", name="new assessor: 100% of first 10 decisions").first).to_be_visible()
    check(page)

    page.get_by_role("link", name="Cara Jones").first.click()
    expect(page.get_by_role("heading", name="Evidence the decision rests on")).to_be_visible()
    check(page)
    page.get_by_label("Disagree").check()
    page.get_by_role("button", name="Record review").click()
    expect(error_summary(page)).to_contain_text("reasons for disagreeing")
    check(page)
    page.get_by_label("Disagree").check()
    page.get_by_label("Reasons").fill("The record lists tasks but not how Mrs B led the decision.")
    page.get_by_label("Feedback on the assessor's planning and feedback quality").fill("Plan with the person.")
    page.get_by_label("What the assessor must do").fill("Re-observe and record Mrs B's own words.")
    page.get_by_label("Due by").fill((date.today() + timedelta(days=14)).isoformat())
    page.get_by_role("button", name="Record review").click()
    expect(page.get_by_role("status").filter(has_text="Review recorded.")).to_be_visible()
    expect(page.get_by_text("Re-observe and record Mrs B's own words.")).to_be_visible()
    check(page)

    page.get_by_role("link", name="Back to the sample").click()
    page.get_by_role("link", name="Back to Autumn interim").click()
    page.get_by_role("link", name="Coverage matrix").click()
    expect(page.get_by_role("heading", level=2, name="Ann Assessor")).to_be_visible()
    check(page)
    page.goto("/quality/")
    page.get_by_role("link", name="Your cycle report").click()
    expect(page.get_by_role("heading", level=1, name="Cycle report: Ida Iqa")).to_be_visible()
    check(page)

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, assessor.email)
    page.goto("/caseload/")
    expect(page.get_by_role("heading", name="IQA actions due")).to_be_visible()
    expect(page.get_by_text("Re-observe and record Mrs B's own words.")).to_be_visible()
    check(page)
    page.get_by_role("link", name="Answer IQA actions").click()
    check(page)


def test_iqa_reviews_a_sampled_unit_sign_off(page, factory, session):
    """A summative strategy draws the signed-off unit; its review page shows the declaration and every decision;
    a disagreement without reasons is refused in place, then one with reasons and an action is recorded; axe-core
    finds nothing on any page."""
    iqa = factory.user(Role.IQA, name="Ida Iqa")
    assessor = factory.assessor(name="Ann Assessor")
    candidate = factory.candidate(name="Cara Jones", assessors=(assessor,), iqas=(iqa,))
    factory.all_met(assessor, candidate)
    assessment.sign_off(session, factory.actor(assessor), candidate.id, "002", declaration_signed=True)
    session.commit()

    sign_in(page, iqa.email)
    page.goto("/quality/strategies/new")
    page.get_by_label("Name").fill("Autumn summative")
    page.get_by_label("Kind of sampling").select_option("summative")
    page.get_by_label("Cycle starts").fill((date.today() - timedelta(days=30)).isoformat())
    page.get_by_label("Routine rate (percent of decisions)").fill("100")
    page.get_by_role("button", name="Save strategy").click()
    expect(page.get_by_role("heading", level=1, name="Sampling plan: Autumn summative")).to_be_visible()
    page.get_by_label("Seed").fill("7")
    page.get_by_role("button", name="Draw sample").click()
    expect(page.get_by_role("cell", name=re.compile("^Unit signed off"))).to_be_visible()
    check(page)

    page.get_by_role("link", name="Cara Jones").click()
    expect(page.get_by_role("heading", level=1, name="Cara Jones: Unit 002 sign-off")).to_be_visible()
    expect(page.get_by_text("I declare that the candidate has met all the assessment criteria")).to_be_visible()
    expect(page.get_by_role("heading", level=3, name=re.compile(r"^6\.3: "))).to_be_visible()
    check(page)
    page.get_by_label("Disagree").check()
    page.get_by_label("What the assessor must do").fill("Observe a review meeting for 4.3.")
    due = (date.today() + timedelta(days=14)).isoformat()
    page.get_by_label("Due by").fill(due)
    page.get_by_role("button", name="Record review").click()
    expect(error_summary(page)).to_contain_text("reasons for disagreeing")
    expect(page.get_by_label("What the assessor must do")).to_have_value("Observe a review meeting for 4.3.")
    expect(page.get_by_label("Due by")).to_have_value(due)
    check(page)
    page.get_by_label("Reasons").fill("4.3 rests on an observation of a handover, not of the person's review.")
    page.get_by_role("button", name="Record review").click()
    expect(page.get_by_role("status").filter(has_text="Review recorded.")).to_be_visible()
    expect(page.get_by_text("Observe a review meeting for 4.3.")).to_be_visible()
    check(page)
