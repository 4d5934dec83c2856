"""The candidate in a real browser: a work product with its files and the declaration, by pointer and by keyboard."""
import re
from datetime import date, timedelta

import pytest

pytest.importorskip("playwright")
from playwright.sync_api import expect  # noqa: E402

from browser_support import (  # noqa: E402
    OUTCOME_2, check, criterion, email_of, error_summary, focused, open_outcome, pdf, photo, sign_in,
    tab_to, type_date,
)


def test_candidate_uploads_pdf_and_photo_with_declaration(page, factory, session, tmp_path):
    """A work product with two files and the declaration of authenticity (after forgetting the files once)."""
    candidate = factory.candidate(assessors=(factory.assessor(),), name="Dana Reid")
    session.commit()

    sign_in(page, email_of(session, candidate))
    page.get_by_role("link", name="Your portfolio").click()
    expect(page.get_by_role("heading", level=1, name="Your portfolio")).to_be_visible()
    check(page)
    page.get_by_role("link", name="Upload a work product").click()
    expect(page.get_by_role("heading", level=1, name="Add a work product")).to_be_visible()
    check(page)

    page.get_by_label("Title", exact=True).fill("One-page profile for Mr K")
    page.get_by_label("Date of the activity").fill((date.today() - timedelta(days=5)).isoformat())
    page.get_by_label("Description", exact=True).fill("An anonymised one-page profile I wrote with Mr K.")
    open_outcome(page, OUTCOME_2)
    criterion(page, "2.4").check()
    page.get_by_label("How it shows 2.4").fill("The profile is the description")
    page.get_by_label("I declare that this is my own work").check()
    page.get_by_role("button", name="Submit for assessment").click()  # forgot the files: refused beside the field

    expect(error_summary(page).get_by_role("link", name=re.compile("Attach the work product"))).to_have_attribute(
        "href", "#files")
    expect(page.locator("#files-error")).to_contain_text("Attach the work product")
    expect(page.get_by_label("I declare that this is my own work")).to_be_checked()
    expect(criterion(page, "2.4")).to_be_checked()
    check(page)
    page.get_by_label("Files").set_input_files([pdf(tmp_path), photo(tmp_path)])
    page.get_by_role("button", name="Submit for assessment").click()

    expect(page.get_by_role("heading", level=1, name="One-page profile for Mr K")).to_be_visible()
    expect(page.locator("ul.files > li")).to_have_count(2)
    expect(page.get_by_role("link", name="support-plan.pdf")).to_be_visible()
    expect(page.get_by_role("link", name="one-page-profile.jpg", exact=True)).to_be_visible()
    expect(page.get_by_role("img", name="Photo: one-page-profile.jpg (opens larger)")).to_be_visible()
    expect(page.locator("ul.signatures > li").filter(has_text="authenticity")).to_contain_text("Dana Reid")
    expect(page.locator("ul.criteria-covered")).to_contain_text("2.4")
    check(page)


def test_work_product_by_keyboard_alone(page, factory, session, tmp_path):
    """Skip link first, focus always visible, and the whole work product form done with the keyboard."""
    candidate = factory.candidate(assessors=(factory.assessor(),), name="Ivy Shaw")
    session.commit()
    when = date.today() - timedelta(days=4)
    document = pdf(tmp_path, "review-record.pdf")
    page.on("filechooser", lambda chooser: chooser.set_files(document))  # early: intercepting is set up async
    sign_in(page, email_of(session, candidate))
    page.goto(f"/candidates/{candidate.id}/evidence/new/work_product")
    check(page)

    page.keyboard.press("Tab")
    first = focused(page)
    assert "skip-link" in first["cls"] and first["text"] == "Skip to main content", first
    expect(page.get_by_role("link", name="Skip to main content")).to_be_in_viewport()
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"

    tab_to(page, lambda f: f["id"] == "title")
    page.keyboard.type("Person-centred review record")
    tab_to(page, lambda f: f["id"] == "activity_date")
    type_date(page, when)
    expect(page.get_by_label("Date of the activity")).to_have_value(when.isoformat())
    tab_to(page, lambda f: f["id"] == "setting")  # past the date picker's button: focus must stay visible there
    page.keyboard.press("ArrowDown")
    expect(page.get_by_label("Real work setting")).not_to_have_value("")
    tab_to(page, lambda f: f["id"] == "narrative")
    page.keyboard.type("The review record I wrote with Mr K, anonymised.")
    tab_to(page, lambda f: f["id"] == "files")
    page.keyboard.press("Space")  # opens the file chooser, answered by the listener set up before the page loaded
    expect(page.get_by_label("Files")).to_have_value(re.compile(r"review-record\.pdf$"))
    tab_to(page, lambda f: f["tag"] == "summary" and f["text"].startswith("4."))
    page.keyboard.press("Enter")
    tab_to(page, lambda f: f["id"] == "crit-4.3")
    page.keyboard.press("Space")
    expect(criterion(page, "4.3")).to_be_checked()
    tab_to(page, lambda f: f["id"] == "note-4.3")
    page.keyboard.type("I facilitated the review")
    tab_to(page, lambda f: f["id"] == "declaration")
    page.keyboard.press("Space")
    expect(page.get_by_label("I declare that this is my own work")).to_be_checked()
    check(page)
    tab_to(page, lambda f: f["tag"] == "button" and f["text"] == "Submit for assessment")
    page.keyboard.press("Enter")

    expect(page.get_by_role("heading", level=1, name="Person-centred review record")).to_be_visible()
    expect(page.get_by_role("link", name="review-record.pdf")).to_be_visible()
    expect(page.locator("ul.criteria-covered")).to_contain_text("I facilitated the review")
    expect(page.locator("ul.signatures > li").filter(has_text="authenticity")).to_contain_text("Ivy Shaw")
    check(page)
    page.keyboard.press("Tab")
    assert "skip-link" in focused(page)["cls"]
