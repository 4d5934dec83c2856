"""The IQA pages as people use them: strategy, draw, review, action loop, coverage, report; bad input refused."""
import re
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import event, func
from sqlmodel import select

from support.web import form_token
from tracker.models import (
    AuditEntry,
    CriterionDecision,
    IqaAction,
    IqaReview,
    Role,
    Sample,
    SampleItem,
    SamplingStrategy,
    UnitSignOff,
)
from tracker.services import assessment, quality
from tracker.services import eqa as eqa_service
from tracker.services import evidence as evidence_service

NOBODY = "0190b6a4-1a2b-7c3d-8e4f-5a6b7c8d9e0f"


@pytest.fixture
def centre(backend, app, session, factory):
    """Ida is IQA of Cara, whose assessor Ann judged all 20 criteria; Olu is another IQA; Ezra is an EQA."""
    iqa = factory.user(Role.IQA, name="Ida Iqa")
    other = factory.user(Role.IQA, name="Olu Other")
    eqa = factory.user(Role.EQA, name="Ezra External")
    a = factory.assessor(name="Ann Assessor")
    c = factory.candidate(name="Cara Candidate", assessors=(a,), iqas=(iqa,))
    factory.all_met(a, c)
    start = datetime.now(UTC) - timedelta(days=1)  # Ezra's inspection visit is in progress
    eqa_service.grant(session, factory.as_admin, {"eqa_id": eqa.id, "candidate_ids": [c.id], "starts_at": start,
                                                  "ends_at": start + timedelta(days=7), "reason": "Annual visit"})
    session.commit()
    return {"iqa": iqa, "other": other, "eqa": eqa, "a": a, "c": c}


@pytest.fixture
def signed_in(client, sign_in):
    """Sign a person in and return a CSRF token for their forms."""
    def do(user) -> str:
        assert sign_in(user).status_code == 302
        return form_token(client.get("/").get_data(as_text=True))
    return do


def strategy_form(**change) -> dict:
    """A valid strategy form."""
    today = date.today()
    return {"name": "Autumn interim", "kind": "interim", "cycle_start": (today - timedelta(days=30)).isoformat(),
            "cycle_end": (today + timedelta(days=30)).isoformat(), "base_rate": "100", "new_assessor_rate": "100",
            "new_assessor_decisions": "10", "new_assessor_months": "12", "disagreement_rate": "50",
            "new_site_rate": "50", "new_sites": ""} | change


def count(session, model) -> int:
    session.commit()
    return session.exec(select(func.count()).select_from(model)).one()


def drawn(client, session, token) -> Sample:
    """Make a strategy and draw a sample through the pages."""
    response = client.post("/quality/strategies/new", data=strategy_form() | {"csrf_token": token})
    assert response.status_code == 303
    strategy_id = response.headers["Location"].rsplit("/", 1)[1]
    response = client.post(f"/quality/strategies/{strategy_id}/draw", data={"seed": "42", "csrf_token": token})
    assert response.status_code == 303
    session.commit()
    return session.exec(select(Sample)).one()


def test_iqa_draws_reviews_and_the_action_goes_round(client, session, centre, signed_in):
    """Draw a sample, disagree with reasons and an action; Ann sees it on her caseload, answers; Ida closes it."""
    token = signed_in(centre["iqa"])
    sample = drawn(client, session, token)
    page = client.get(f"/quality/samples/{sample.id}").get_data(as_text=True)
    assert "routine: 100% of decisions" in page and "Cara Candidate" in page
    item = session.exec(select(SampleItem).order_by(SampleItem.decision_id)).first()
    detail = client.get(f"/quality/items/{item.id}").get_data(as_text=True)
    assert "Ann Assessor" in detail and "Evidence the decision rests on" in detail
    due = (date.today() + timedelta(days=7)).isoformat()
    response = client.post(f"/quality/items/{item.id}", data={
        "verdict": "disagree", "reasons": "The record does not show the person leading.", "practice_feedback":
        "Plan observations with the person.", "action": "Re-observe and record the person's words.", "due_on": due,
        "csrf_token": token})
    assert response.status_code == 303
    assert session.exec(select(IqaReview.verdict)).all() == ["disagree"]
    client.post("/auth/logout", data={"csrf_token": token})
    token = signed_in(centre["a"])
    caseload = client.get("/caseload/").get_data(as_text=True)
    assert "IQA actions due" in caseload and "Re-observe and record the person" in caseload
    action = session.exec(select(IqaAction)).one()
    response = client.post(f"/quality/actions/{action.id}/respond", data={
        "response": "Observed again on Friday; record updated.", "reopen": "yes", "csrf_token": token})
    assert response.status_code == 303
    session.commit()
    assert session.get(CriterionDecision, item.decision_id).current is False
    client.post("/auth/logout", data={"csrf_token": token})
    token = signed_in(centre["iqa"])
    assert client.post(f"/quality/actions/{action.id}/close", data={"csrf_token": token}).status_code == 303
    session.commit()
    session.refresh(action)
    assert action.status == "closed"
    report = client.get(f"/quality/reports/{centre['iqa'].id}").get_data(as_text=True)
    assert "Ann Assessor" in report
    pdf = client.get(f"/quality/reports/{centre['iqa'].id}.pdf")
    assert pdf.status_code == 200 and pdf.data.startswith(b"%PDF")
    trail = [e.action for e in session.exec(select(AuditEntry).order_by(AuditEntry.seq))]
    assert trail[-7:] == ["iqa.strategy_created", "iqa.sample_drawn", "iqa.reviewed", "iqa.action_raised",
                          "decision.reopened", "iqa.action_answered", "iqa.action_closed"]


@pytest.mark.parametrize("change, message", [
    ({"base_rate": "150"}, "must be between 0 and 100"),
    ({"new_site_rate": "-5"}, "must be between 0 and 100"),
    ({"disagreement_rate": "half"}, "as a whole number"),
    ({"kind": "daily"}, "Choose interim or summative"),
    ({"cycle_start": "yesterday"}, "as a date"),
    ({"cohort": NOBODY}, "Choose candidates you are the IQA for"),
    ({"name": ""}, "Give the strategy a name"),
])
def test_bad_strategy_form_is_a_clear_error(client, session, centre, signed_in, change, message):
    """Each bad field is named on the form with a 422, and nothing is saved."""
    token = signed_in(centre["iqa"])
    response = client.post("/quality/strategies/new", data=strategy_form(**change) | {"csrf_token": token})
    assert response.status_code == 422 and message in response.get_data(as_text=True)
    assert count(session, SamplingStrategy) == 0


def test_bad_draw_review_and_item_input(client, session, centre, signed_in):
    """Bad seeds, forged ids and missing reasons are refused with a message; nothing is half-written."""
    token = signed_in(centre["iqa"])
    sample = drawn(client, session, token)
    strategy_id = sample.strategy_id
    response = client.post(f"/quality/strategies/{strategy_id}/draw", data={"seed": "seven", "csrf_token": token})
    assert response.status_code == 422 and "whole number" in response.get_data(as_text=True)
    assert client.post(f"/quality/strategies/{NOBODY}/draw", data={"seed": "1", "csrf_token": token}).status_code \
        == 404
    assert client.get("/quality/items/not-an-id").status_code == 404
    item = session.exec(select(SampleItem)).first()
    response = client.post(f"/quality/items/{item.id}", data={"verdict": "disagree", "reasons": "", "csrf_token":
                                                               token})
    assert response.status_code == 422 and "reasons for disagreeing" in response.get_data(as_text=True)
    response = client.post(f"/quality/items/{item.id}", data={"verdict": "agree", "action": "Do this",
                                                               "due_on": "soon", "csrf_token": token})
    assert response.status_code == 422 and "as a date" in response.get_data(as_text=True)
    response = client.post(f"/quality/items/{item.id}", data={"verdict": "maybe", "csrf_token": token})
    assert response.status_code == 422
    response = client.post(f"/quality/samples/{sample.id}/items", data={
        "decision": NOBODY, "reason": "Concern raised", "csrf_token": token})
    assert response.status_code == 422 and "cohort" in response.get_data(as_text=True)
    assert count(session, IqaReview) == 0 and count(session, IqaAction) == 0


def test_another_iqa_cannot_see_or_change_the_sample(client, session, centre, signed_in, sign_in):
    """Olu gets 'not found' for Ida's strategy, sample and items, and cannot review them."""
    token = signed_in(centre["iqa"])
    sample = drawn(client, session, token)
    item = session.exec(select(SampleItem)).first()
    client.post("/auth/logout", data={"csrf_token": token})
    token = signed_in(centre["other"])
    assert client.get(f"/quality/strategies/{sample.strategy_id}").status_code == 404
    assert client.get(f"/quality/samples/{sample.id}").status_code == 404
    assert client.post(f"/quality/items/{item.id}", data={"verdict": "agree", "csrf_token": token}).status_code \
        == 404
    assert count(session, IqaReview) == 0


def test_eqa_reads_every_page_with_no_write_controls(client, session, centre, signed_in):
    """An EQA opens the plan, sample, item, coverage and report read-only; their posts are refused."""
    token = signed_in(centre["iqa"])
    sample = drawn(client, session, token)
    item = session.exec(select(SampleItem)).first()
    client.post("/auth/logout", data={"csrf_token": token})
    token = signed_in(centre["eqa"])
    for path in ("/quality/", f"/quality/strategies/{sample.strategy_id}", f"/quality/samples/{sample.id}",
                 f"/quality/items/{item.id}", f"/quality/strategies/{sample.strategy_id}/coverage",
                 f"/quality/reports/{centre['iqa'].id}"):
        response = client.get(path)
        page = response.get_data(as_text=True)
        assert response.status_code == 200, path
        assert not re.search(r'<form method="post"(?! action="/auth/logout")', page), path
    assert client.post(f"/quality/strategies/{sample.strategy_id}/draw",
                       data={"seed": "1", "csrf_token": token}).status_code == 403


def test_plan_lists_exclusions_and_who_else_can_sample(client, session, factory, centre, signed_in):
    """A dual-role IQA's plan lists their own decisions as excluded, naming the independent IQA."""
    dual = factory.assessor(name="Dee Dual", extra_roles=(Role.IQA,))
    d = factory.candidate(name="Dan Candidate", assessors=(dual,), iqas=(dual, centre["other"]))
    factory.all_met(dual, d)
    strategy = quality.create_strategy(session, factory.actor(dual), strategy_form())
    session.commit()
    signed_in(dual)
    page = client.get(f"/quality/strategies/{strategy.id}").get_data(as_text=True)
    assert "they made this decision" in page and "Olu Other" in page
    assert "0 items" in page


def test_coverage_page_statement_count_does_not_grow(client, session, factory, centre, signed_in, app):
    """The coverage matrix costs the same number of SQL statements for one candidate as for three."""
    token = signed_in(centre["iqa"])
    sample = drawn(client, session, token)

    def statements() -> int:
        seen = []
        engine = app.extensions["engine"]
        listener = lambda *args: seen.append(1)  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            assert client.get(f"/quality/strategies/{sample.strategy_id}/coverage").status_code == 200
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        return len(seen)

    before = statements()
    for n in range(2):
        extra = factory.candidate(name=f"Extra {n}", assessors=(centre["a"],), iqas=(centre["iqa"],))
        factory.all_met(centre["a"], extra)
    session.commit()
    assert statements() == before


def test_overdue_action_is_marked_for_the_assessor_and_the_iqa(client, session, centre, signed_in):
    """An action past its date shows as overdue on the assessor's caseload and on the IQA's page."""
    token = signed_in(centre["iqa"])
    drawn(client, session, token)
    item = session.exec(select(SampleItem)).first()
    client.post(f"/quality/items/{item.id}", data={"verdict": "agree", "action": "Add the person's words.",
                                                    "due_on": date.today().isoformat(), "csrf_token": token})
    action = session.exec(select(IqaAction)).one()
    action.due_on = date.today() - timedelta(days=2)
    session.add(action)
    session.commit()
    assert "Overdue" in client.get("/quality/").get_data(as_text=True)
    client.post("/auth/logout", data={"csrf_token": token})
    signed_in(centre["a"])
    page = client.get("/caseload/").get_data(as_text=True)
    assert "Add the person&#39;s words." in page and "overdue" in page


def test_caseload_statement_count_does_not_grow_with_actions(client, session, factory, centre, signed_in, app):
    """The assessor's caseload runs the same number of SQL statements with one IQA action as with three."""
    s = quality.create_strategy(session, factory.actor(centre["iqa"]), strategy_form())
    sample = quality.draw(session, factory.actor(centre["iqa"]), s.id, 3)
    items = session.exec(select(SampleItem).where(SampleItem.sample_id == sample.id)
                         .order_by(SampleItem.decision_id)).all()
    review = lambda item: quality.review(session, factory.actor(centre["iqa"]), item.id, "agree", "", "",  # noqa: E731
                                         "Add the person's words.", date.today() + timedelta(days=3))
    review(items[0])
    session.commit()
    signed_in(centre["a"])

    def statements() -> int:
        seen = []
        listener = lambda *args: seen.append(1)  # noqa: E731
        event.listen(app.extensions["engine"], "before_cursor_execute", listener)
        try:
            assert "IQA actions due" in client.get("/caseload/").get_data(as_text=True)
        finally:
            event.remove(app.extensions["engine"], "before_cursor_execute", listener)
        return len(seen)

    before = statements()
    review(items[1])
    review(items[2])
    session.commit()
    assert statements() == before


# --- Summative review of a sampled unit sign-off --------------------------------------------------------------------


def summative_items(session, factory, centre, *candidates) -> dict:
    """Sign off each candidate's unit (Ann) and draw them all into Ida's summative sample; return items by candidate."""
    for c in candidates:
        assessment.sign_off(session, factory.actor(centre["a"]), c.id, "002", declaration_signed=True)
    s = quality.create_strategy(session, factory.actor(centre["iqa"]),
                                strategy_form(kind="summative", name="Autumn summative"))
    sample = quality.draw(session, factory.actor(centre["iqa"]), s.id, 8)
    session.commit()
    return {i.candidate_id: i for i in session.exec(select(SampleItem).where(SampleItem.sample_id == sample.id))}


def test_sign_off_review_page_shows_decisions_and_declaration_and_takes_a_verdict(client, session, factory, centre,
                                                                                   signed_in):
    """Ida opens the sampled sign-off: the declaration, who signed off, all 20 decisions with their evidence; she
    agrees, and the review is stored, shown, and counted in her report under Ann and 'unit sign-off'."""
    item = summative_items(session, factory, centre, centre["c"])[centre["c"].id]
    token = signed_in(centre["iqa"])
    response = client.get(f"/quality/items/{item.id}")
    page = response.get_data(as_text=True)
    assert response.status_code == 200 and "Cara Candidate: Unit 002 sign-off" in page
    assert "I declare that the candidate has met all the assessment criteria of this unit" in page
    assert "Signed off by</dt><dd>Ann Assessor" in page and "Decisions the sign-off rests on" in page
    assert page.count("Evidence for ") == 20 and "1.1: " in page and "6.3: " in page
    assert "Agree with the sign-off" in page and "Feedback on the assessor&#39;s judgements" in page
    response = client.post(f"/quality/items/{item.id}", data={
        "verdict": "agree", "reasons": "", "practice_feedback": "Decisions quote what Cara did.", "csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/quality/items/{item.id}")
    signoff = session.exec(select(UnitSignOff)).one()
    assert [(r.decision_id, r.signoff_id, r.verdict, r.practice_feedback) for r in session.exec(select(IqaReview))] \
        == [(None, signoff.id, "agree", "Decisions quote what Cara did.")]
    page = client.get(f"/quality/items/{item.id}").get_data(as_text=True)
    assert "Review recorded." in page and "<strong>Agree</strong>" in page and "Record review" not in page
    report = client.get(f"/quality/reports/{centre['iqa'].id}").get_data(as_text=True)
    assert re.search(r'<th scope="row">unit sign-off</th><td>1</td>', report)
    assert re.search(r'<th scope="row">Ann Assessor</th><td>1</td>', report)


def test_bad_sign_off_review_keeps_what_was_typed(client, session, factory, centre, signed_in):
    """A disagreement without reasons comes back with the message and everything typed, as a page (422) and as an
    htmx fragment (200); nothing is stored."""
    item = summative_items(session, factory, centre, centre["c"])[centre["c"].id]
    token = signed_in(centre["iqa"])
    typed = {"verdict": "disagree", "reasons": "Too thin", "practice_feedback": "Plan the observation with Cara.",
             "action": "Observe 4.3 at a review meeting.", "due_on": (date.today() + timedelta(days=7)).isoformat(),
             "csrf_token": token}
    response = client.post(f"/quality/items/{item.id}", data=typed)
    page = response.get_data(as_text=True)
    assert response.status_code == 422 and "Give the reasons for disagreeing" in page
    assert 'value="disagree" checked' in page and ">Too thin</textarea>" in page
    assert "Plan the observation with Cara.</textarea>" in page
    assert "Observe 4.3 at a review meeting.</textarea>" in page
    assert f'value="{typed["due_on"]}"' in page and 'href="#reasons"' in page
    response = client.post(f"/quality/items/{item.id}", data=typed, headers={"HX-Request": "true"})
    fragment = response.get_data(as_text=True)
    assert response.status_code == 200 and fragment.lstrip().startswith("<section id=\"review\"")
    assert "<html" not in fragment and "Give the reasons for disagreeing" in fragment
    assert ">Too thin</textarea>" in fragment
    assert count(session, IqaReview) == 0 and count(session, IqaAction) == 0


def test_sign_off_review_as_an_htmx_fragment(client, session, factory, centre, signed_in):
    """An in-page htmx request gets only the review section, and a recorded review comes back in it."""
    item = summative_items(session, factory, centre, centre["c"])[centre["c"].id]
    token = signed_in(centre["iqa"])
    fragment = client.get(f"/quality/items/{item.id}", headers={"HX-Request": "true"}).get_data(as_text=True)
    assert fragment.lstrip().startswith('<section id="review"') and "Decisions the sign-off rests on" not in fragment
    boosted = client.get(f"/quality/items/{item.id}", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert "Decisions the sign-off rests on" in boosted.get_data(as_text=True)
    response = client.post(f"/quality/items/{item.id}", headers={"HX-Request": "true"}, data={
        "verdict": "disagree", "reasons": "Criterion 4.3 rests on an observation of a different meeting.",
        "action": "Observe 4.3 at a review meeting.", "due_on": (date.today() + timedelta(days=7)).isoformat(),
        "csrf_token": token})
    fragment = response.get_data(as_text=True)
    assert response.status_code == 200 and "Review recorded." in fragment and "<strong>Disagree</strong>" in fragment
    assert "Observe 4.3 at a review meeting." in fragment and response.headers["Vary"].count("HX-Request")
    assert session.exec(select(IqaReview.verdict)).all() == ["disagree"]
    assert session.exec(select(IqaAction.assessor_id)).all() == [centre["a"].id]


def test_sign_off_review_refused_to_other_iqas_and_other_roles(client, session, factory, centre, signed_in):
    """Another IQA gets 'not found'; an assessor is refused; the EQA reads it with no form and cannot post."""
    item = summative_items(session, factory, centre, centre["c"])[centre["c"].id]
    path = f"/quality/items/{item.id}"
    token = signed_in(centre["other"])
    assert client.get(path).status_code == 404
    assert client.post(path, data={"verdict": "agree", "csrf_token": token}).status_code == 404
    client.post("/auth/logout", data={"csrf_token": token})
    token = signed_in(centre["a"])
    assert client.get(path).status_code == 403
    assert client.post(path, data={"verdict": "agree", "csrf_token": token}).status_code == 403
    client.post("/auth/logout", data={"csrf_token": token})
    token = signed_in(centre["eqa"])
    response = client.get(path)
    assert response.status_code == 200 and "Decisions the sign-off rests on" in response.get_data(as_text=True)
    assert "Record review" not in response.get_data(as_text=True)
    assert client.post(path, data={"verdict": "agree", "csrf_token": token}).status_code == 403
    assert count(session, IqaReview) == 0


def test_sign_off_review_page_statement_count_does_not_grow(client, session, factory, centre, signed_in, app):
    """The page costs the same SQL statements for a sign-off whose decisions rest on one piece of evidence each as
    for one whose decisions rest on two."""
    e = factory.candidate(name="Eli Candidate", assessors=(centre["a"],), iqas=(centre["iqa"],))
    first = factory.all_met(centre["a"], e)
    codes = [c.code for c in assessment.criteria_of(session, evidence_service.unit_for(session, e, "002"))]
    second = factory.accepted(centre["a"], e, "observation", criteria=[{"code": c, "note": "Seen"} for c in codes])
    for code in codes:
        assessment.decide(session, factory.actor(centre["a"]), e.id, "002", code, "met", [first.id, second.id])
    items = summative_items(session, factory, centre, centre["c"], e)
    signed_in(centre["iqa"])

    def statements(item) -> int:
        seen = []
        listener = lambda *args: seen.append(1)  # noqa: E731
        event.listen(app.extensions["engine"], "before_cursor_execute", listener)
        try:
            page = client.get(f"/quality/items/{item.id}").get_data(as_text=True)
        finally:
            event.remove(app.extensions["engine"], "before_cursor_execute", listener)
        assert page.count("Evidence for ") == 20
        return len(seen)

    statements(items[centre["c"].id])  # warm: the first page also loads the signed-in person
    assert statements(items[centre["c"].id]) == statements(items[e.id])
