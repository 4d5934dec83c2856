"""Readiness for sign-off, worked out from plain facts: each criterion's status and what blocks sign-off."""
import json
from datetime import date
from importlib import resources

import pytest

from tracker.readiness import MET, NOT_STARTED, SUBMITTED, DecisionFacts, EvidenceFacts, assess
from tracker.specpacks.schema import AssessmentStrategy, Pack

PACK = Pack.model_validate(json.loads(resources.files("tracker.specpacks").joinpath("cg-3085.json").read_text("utf-8")))
U002 = PACK.unit("002").assessment
CRITERIA = [(c.code, c.text) for o in PACK.unit("002").outcomes for c in o.criteria]
CODES = [c for c, _ in CRITERIA]


def ev(id_: str = "e1", method: str = "observation", status: str = "accepted", criteria=("2.1",), **facts):
    """Return the facts about one piece of evidence; observations are by an eligible observer unless told."""
    facts.setdefault("observer_eligible", method == "observation")
    return EvidenceFacts(id_, f"Title {id_}", method, status, frozenset(criteria), **facts)


def met(*codes: str, on=("e1",), **facts) -> list[DecisionFacts]:
    """Return decisions judging criteria met on evidence."""
    return [DecisionFacts(c, "met", frozenset(on), **facts) for c in codes]


def state(evidence=(), decisions=(), strategy: AssessmentStrategy = U002, signed_off_on: date | None = None):
    """Assess Unit 002 readiness from the facts."""
    return assess("002", strategy, CRITERIA, list(evidence), list(decisions), signed_off_on)


def row(result, code: str):
    """Return one criterion's readiness."""
    return next(c for c in result.criteria if c.code == code)


def blocker(result, code: str):
    """Return the blocker with a code, or None."""
    return next((b for b in result.blockers if b.code == code), None)


def complete() -> tuple[list[EvidenceFacts], list[DecisionFacts]]:
    """An accepted eligible observation covering every criterion, each judged met."""
    return [ev("o", criteria=CODES)], met(*CODES, on=("o",))


# --- Criterion status and messages ----------------------------------------------------------------------


@pytest.mark.parametrize(("evidence", "decisions", "status", "phrases"), [
    pytest.param([], [], NOT_STARTED, ["No evidence yet for 2.1 (identify what is important", "Add a work product",
                                       "plan an observation"], id="no-evidence"),
    pytest.param([ev(status="draft")], [], NOT_STARTED, ["No evidence yet for 2.1"], id="draft-does-not-count"),
    pytest.param([ev(status="submitted")], [], SUBMITTED, ["Evidence for 2.1", "waiting for your assessor to review"],
                 id="submitted"),
    pytest.param([ev(status="resubmitted")], [], SUBMITTED, ["waiting for your assessor to review"], id="resubmitted"),
    pytest.param([ev(status="referred")], [], SUBMITTED, ["was referred", "read your assessor's feedback",
                                                          "resubmit it"], id="referred"),
    pytest.param([ev()], [], SUBMITTED, ["Evidence for 2.1", "has been accepted", "not yet judged the criterion met"],
                 id="accepted-not-judged"),
    pytest.param([ev()], [DecisionFacts("2.1", "not_met", frozenset({"e1"}), note="Say how the tool was chosen.")],
                 SUBMITTED, ["judged 2.1 (identify", "not yet met: Say how the tool was chosen.",
                             "Read the feedback and add or resubmit evidence"], id="judged-not-met-with-note"),
    pytest.param([ev()], [DecisionFacts("2.1", "not_met", frozenset({"e1"}))], SUBMITTED,
                 ["not yet met. Read the feedback"], id="judged-not-met-without-note"),
    pytest.param([ev()], met("2.1", assessor_eligible=False), SUBMITTED,
                 ["judged met by someone not eligible", "an eligible assessor must judge it"],
                 id="met-by-ineligible-assessor"),
    pytest.param([ev(status="submitted")], met("2.1"), SUBMITTED, ["waiting for your assessor to review"],
                 id="met-but-evidence-not-accepted"),
    pytest.param([ev(status="referred")], met("2.1"), SUBMITTED, ["was referred"], id="met-but-evidence-referred"),
    pytest.param([ev()], met("2.1"), MET, [], id="met"),
])
def test_criterion_status_and_message(evidence, decisions, status, phrases):
    """Each criterion shows its status and, unless met, says in plain words what happens next."""
    criterion = row(state(evidence, decisions), "2.1")
    assert criterion.status == status
    if status == MET:
        assert criterion.message is None
    for phrase in phrases:
        assert phrase in criterion.message


@pytest.mark.parametrize(("status", "label"), [(NOT_STARTED, "Not started"), (SUBMITTED, "Evidence submitted"),
                                               (MET, "Met")])
def test_status_labels(status, label):
    """Each status reads as words on the readiness view."""
    evidence = {NOT_STARTED: [], SUBMITTED: [ev(status="submitted")], MET: [ev()]}[status]
    assert row(state(evidence, met("2.1")), "2.1").label == label


def test_met_needs_accepted_evidence_mapped_to_that_criterion():
    """A met decision counts only when accepted evidence is mapped to the criterion itself."""
    result = state([ev(criteria=("2.1",))], met("2.2"))
    assert row(result, "2.2").status == NOT_STARTED


def test_evidence_is_listed_by_method():
    """Each criterion lists its live evidence grouped by method; drafts are left out."""
    result = state([ev("o1"), ev("w1", "work_product"), ev("w2", "work_product", "submitted"),
                    ev("d1", "work_product", "draft")])
    assert row(result, "2.1").evidence == {"observation": ("o1",), "work_product": ("w1", "w2")}
    assert row(result, "1.1").evidence == {}


def test_counts_by_status():
    """The counts add up each status over the 20 criteria."""
    result = state([ev(criteria=("1.1", "1.2")), ev("e2", status="submitted", criteria=("1.3",))], met("1.1"))
    assert result.counts == {NOT_STARTED: 17, SUBMITTED: 2, MET: 1}


# --- Observation ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("evidence", "phrases"), [
    pytest.param([], ["Unit 002 needs at least one observation", "§4, Assessment strategy",
                      "None has been recorded yet: arrange one with your assessor"], id="none"),
    pytest.param([ev(method="work_product")], ["None has been recorded yet"], id="work-product-only"),
    pytest.param([ev(method="witness_testimony")], ["You have witness testimony", "counts as witness testimony, "
                                                    "not as an observation", "Arrange an observation"],
                 id="witness-testimony-only"),
    pytest.param([ev(status="submitted")], ["Your observation is recorded but not yet accepted"],
                 id="observation-not-accepted"),
    pytest.param([ev(status="draft")], ["None has been recorded yet"], id="observation-draft"),
    pytest.param([ev(observer_eligible=False)], ["was recorded by someone who is not an eligible assessor or approved "
                                                 "expert witness", "does not count"], id="observer-not-eligible"),
])
def test_observation_required(evidence, phrases):
    """Without an accepted observation by an eligible observer, sign-off is blocked and the message says why."""
    result = state(evidence)
    found = blocker(result, "observation_required")
    assert found is not None
    for phrase in phrases:
        assert phrase in found.message
    assert not any(c.observed for c in result.criteria)


def test_accepted_eligible_observation_lifts_the_observation_blocker():
    """One accepted observation by an eligible observer satisfies the unit-level requirement."""
    result = state([ev(criteria=("2.1",))])
    assert blocker(result, "observation_required") is None
    assert [c.code for c in result.criteria if c.observed] == ["2.1"]


def test_witness_testimony_gives_no_observation_cover():
    """Criteria covered only by witness testimony are not marked as observed."""
    result = state([ev(), ev("t1", "witness_testimony", criteria=("4.3",))])
    assert (row(result, "2.1").observed, row(result, "4.3").observed) == (True, False)


@pytest.mark.parametrize(("covered", "missing", "phrase"), [
    (("2.1",), ("4.3",), "The centre requires an observation for 4.3, and none covers it yet."),
    ((), ("2.1", "4.3"), "The centre requires an observation for 2.1, 4.3, and none covers them yet."),
    (("2.1", "4.3"), None, None),
])
def test_centre_can_require_observation_of_named_criteria(covered, missing, phrase):
    """A centre setting can require observation cover for named criteria; the blocker names the uncovered ones."""
    strategy = AssessmentStrategy.model_validate(U002.model_dump() | {"observation_required_criteria": ["2.1", "4.3"]})
    result = state([ev("o", criteria=covered or ("1.1",))], strategy=strategy)
    found = blocker(result, "observation_required")
    if missing is None:
        assert found is None
    else:
        assert (found.criteria, found.message) == (missing, phrase)


def test_observation_cover_by_criterion_is_off_by_default():
    """By default one observation of any criterion is enough; the others need no observation of their own."""
    assert blocker(state([ev(criteria=("1.1",))]), "observation_required") is None


# --- Declarations --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("facts", "blocked"), [
    (dict(candidate_authored=True, has_declaration=False), True),
    (dict(candidate_authored=True, has_declaration=False, status="referred"), True),
    (dict(candidate_authored=True, has_declaration=True), False),
    (dict(candidate_authored=False, has_declaration=False), False),
    (dict(candidate_authored=True, has_declaration=False, status="draft"), False),
], ids=["unsigned", "unsigned-referred", "signed", "not-candidate-authored", "draft"])
def test_declaration_missing(facts, blocked):
    """Live candidate-authored evidence without the declaration of authenticity blocks sign-off, naming it."""
    result = state([ev("w1", "work_product", **({"status": "submitted"} | facts))])
    found = blocker(result, "declaration_missing")
    assert (found is not None) is blocked
    if blocked:
        assert "'Title w1'" in found.message
        assert "Sign the declaration that this is your own work" in found.message


# --- Ready, signed off, shape ----------------------------------------------------------------------------


def test_criteria_not_met_lists_every_unmet_criterion():
    """The criteria blocker counts and names the criteria still to be met."""
    evidence, decisions = complete()
    result = state(evidence, decisions[1:])
    found = blocker(result, "criteria_not_met")
    assert found.criteria == ("1.1",)
    assert found.message.startswith("1 of 20 assessment criteria are not yet met: 1.1.")


def test_ready_only_when_nothing_blocks():
    """A complete portfolio is ready; taking away any one fact makes it not ready."""
    evidence, decisions = complete()
    assert state(evidence, decisions).ready
    assert state(evidence, decisions).blockers == ()
    assert not state([ev("o", criteria=CODES, observer_eligible=False)], decisions).ready
    assert not state(evidence, decisions[:-1]).ready
    assert not state(evidence + [ev("w", "work_product", candidate_authored=True)], decisions).ready


def test_signed_off_unit_is_not_ready_again_and_has_no_blockers():
    """Once signed off, the unit shows its date and is neither blocked nor awaiting sign-off."""
    result = state(signed_off_on=date(2026, 11, 1))
    assert (result.ready, result.blockers, result.signed_off_on) == (False, (), date(2026, 11, 1))


def test_blockers_come_in_the_order_a_person_fixes_them():
    """An empty portfolio shows the criteria blocker first, then the observation blocker."""
    assert [b.code for b in state().blockers] == ["criteria_not_met", "observation_required"]


def test_as_dict_shape():
    """The JSON form gives the unit, readiness, counts, every criterion and every blocker as plain data."""
    data = state([ev(criteria=("2.1",))], met("2.1"), signed_off_on=None).as_dict()
    assert set(data) == {"unit", "ready", "signed_off_on", "counts", "criteria", "blockers"}
    assert (data["unit"], data["ready"], data["signed_off_on"]) == ("002", False, None)
    assert len(data["criteria"]) == 20
    assert data["criteria"][3] == {"code": "2.1", "status": "met", "observed": True, "message": None,
                                   "evidence": {"observation": ["e1"]}}
    assert data["blockers"] == [{"code": "criteria_not_met", "message": data["blockers"][0]["message"],
                                 "criteria": [c for c in CODES if c != "2.1"]}]
    json.dumps(data)


def test_as_dict_signed_off_date_is_iso():
    """A signed-off unit's date is given in ISO form."""
    assert state(signed_off_on=date(2026, 11, 1)).as_dict()["signed_off_on"] == "2026-11-01"
