"""The core flow end to end: register, observe, accept, judge, sign off, locked."""
import pytest

from tracker.rules import RuleViolation
from tracker.services import assessment, evidence


def test_candidate_reaches_sign_off_and_unit_locks(backend, session, factory):
    """A candidate with an accepted observation covering every criterion, all judged met, is signed off."""
    assessor = factory.assessor()
    candidate = factory.candidate(assessors=(assessor,))
    item = factory.all_met(assessor, candidate)
    unit = evidence.unit_for(session, candidate, "002")
    state = assessment.readiness_for(session, candidate, unit)
    assert state.ready, state.blockers
    assessment.sign_off(session, factory.actor(assessor), candidate.id, "002", declaration_signed=True)
    with pytest.raises(RuleViolation) as refused:
        evidence.review(session, factory.actor(assessor), item.id, "referred", "Please add more detail here")
    assert refused.value.code in ("unit_locked",)
