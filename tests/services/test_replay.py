"""Replays of a capture, markers matched as words, and missing text arguments."""
import pytest
from sqlmodel import func, select

from tracker import rules
from tracker.errors import InvalidInput
from tracker.models import AuditEntry, Evidence
from tracker.services import assessment, evidence
from tracker.specpacks import loader
from tracker.specpacks.schema import Pack

STRATEGY = Pack.model_validate(loader.bundled()[0]).unit("002").assessment


@pytest.mark.parametrize("detail", ["Hammock Lane day centre", "Simmonds supported living"])
def test_marker_inside_a_word_is_not_simulation(detail):
    """A place name that merely contains a marker is a real setting."""
    rules.check_setting(STRATEGY, "other", detail, False)


@pytest.mark.parametrize("detail", ["Mock review in the training room", "simulated home visit", "role-play"])
def test_marker_as_a_word_is_simulation(detail):
    """A marker at the start of a word is refused as simulation."""
    with pytest.raises(rules.RuleViolation) as refused:
        rules.check_setting(STRATEGY, "other", detail, False)
    assert refused.value.code == "simulation_not_allowed"


def test_replay_after_sign_off_returns_the_original(backend, session, factory):
    """The same capture sent again after the unit locked gets the original back, with no new rows."""
    assessor = factory.assessor()
    candidate = factory.candidate(assessors=(assessor,))
    factory.all_met(assessor, candidate)
    data = factory.evidence_data(candidate, "observation", id="01a20af3-04f1-747e-97f7-846e505994e9",
                                 submit=False)
    first = evidence.capture(session, factory.actor(assessor), data)
    assessment.sign_off(session, factory.actor(assessor), candidate.id, "002", declaration_signed=True)
    rows = session.exec(select(func.count()).select_from(Evidence)).one()
    audit = session.exec(select(func.count()).select_from(AuditEntry)).one()
    again = evidence.capture(session, factory.actor(assessor), data)
    assert again.id == first.id
    assert session.exec(select(func.count()).select_from(Evidence)).one() == rows
    assert session.exec(select(func.count()).select_from(AuditEntry)).one() == audit


def test_missing_feedback_is_a_refusal_not_a_crash(backend, session, factory):
    """Referring with no feedback at all is refused with a message."""
    assessor = factory.assessor()
    candidate = factory.candidate(assessors=(assessor,))
    item = factory.capture(assessor, candidate, "observation")
    with pytest.raises(InvalidInput, match="developmental feedback"):
        evidence.review(session, factory.actor(assessor), item.id, "referred", None)


def test_non_record_input_is_refused_plainly(backend, session, factory):
    """Input that is not a set of fields is refused in plain words."""
    with pytest.raises(InvalidInput, match="set of named fields"):
        evidence.capture(session, factory.actor(factory.assessor()), ["not", "a", "record"])
