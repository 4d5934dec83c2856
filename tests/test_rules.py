"""The handbook's rules as pure functions: each rule accepts what the handbook allows and refuses the rest."""
import json
from dataclasses import dataclass
from datetime import date
from importlib import resources

import pytest

from tracker import readiness, rules
from tracker.errors import Refusal
from tracker.rules import Eligibility, Observer, RuleViolation
from tracker.specpacks.schema import Pack

PACK = Pack.model_validate(json.loads(resources.files("tracker.specpacks").joinpath("cg-3085.json").read_text("utf-8")))
U002 = PACK.unit("002").assessment
U001 = PACK.unit("001").assessment
CRITERIA = [(c.code, c.text) for o in PACK.unit("002").outcomes for c in o.criteria]
ON = date(2026, 11, 23)
REGISTERED = date(2025, 11, 23)
LONG_AGO = date(2020, 1, 1)


@dataclass
class Cred:
    """An assessor qualification record."""

    qualification_code: str = "A1"
    awarded_on: date | None = LONG_AGO
    withdrawn_on: date | None = None


@dataclass
class Comp:
    """An occupational competence record."""

    level: str = "competent"
    withdrawn_on: date | None = None


@dataclass
class Approval:
    """An expert witness approval with the handbook's three facts."""

    working_knowledge: str = "Trained in person-centred thinking tools"
    occupational_competence: str = "Palliative care nurse, 12 years"
    assessment_qualification: str | None = None
    evaluating_role: str | None = "Clinical lead who appraises staff practice"
    approved_on: date = LONG_AGO
    withdrawn_on: date | None = None


ELIGIBLE = Eligibility(True)
AVRA_ONLY = rules.assessor_eligibility(U002, "002", [Cred("QCF_L3_AVRA")], [Comp()], ON)
WITNESS = {"witness_name": "Sam Patel", "witness_role": "Senior carer",
           "witness_relationship": "Colleague on the same shift", "witness_contact": "01632 960123"}


def observer(*roles: str, **facts) -> Observer:
    """Return the facts about someone recording an observation."""
    return Observer(name="Jo Bloggs", roles=frozenset(roles), **facts)


def eligible(unit: str, creds, comps, on: date = ON) -> Eligibility:
    """Return a person's eligibility for a unit of the bundled pack."""
    strategy = U002 if unit == "002" else U001
    return rules.assessor_eligibility(strategy, unit, creds, comps, on)


# --- Every rule, accepting ---------------------------------------------------------------------------

ACCEPTS = [
    *[pytest.param(lambda m=m: rules.check_method(U002, "002", m), id=f"method-002-{m}") for m in U002.methods],
    pytest.param(lambda: rules.check_method(U001, "001", "assignment"), id="method-001-assignment"),
    pytest.param(lambda: rules.check_activity_date(REGISTERED, REGISTERED, ON), id="date-equal-to-registration"),
    pytest.param(lambda: rules.check_activity_date(ON, REGISTERED, ON), id="date-today"),
    pytest.param(lambda: rules.check_activity_date(date(2025, 11, 22), REGISTERED, ON, rpl_allowed=True),
                 id="date-before-registration-where-rpl-allowed"),
    *[pytest.param(lambda s=s.code: rules.check_setting(U002, s, None, False), id=f"setting-{s.code}")
      for s in U002.settings],
    pytest.param(lambda: rules.check_setting(U002, "other", "Supported living house", False), id="setting-other-named"),
    pytest.param(lambda: rules.check_setting(U001, None, "classroom", True), id="setting-unit-001-not-real-work-only"),
    pytest.param(lambda: rules.check_assessor("Jo", frozenset({"assessor"}), ELIGIBLE, "002", "judge"),
                 id="assessor-eligible"),
    pytest.param(lambda: rules.check_assessor("Jo", frozenset({"assessor"}), eligible("001", [Cred()],
                                                                                      [Comp("knowledgeable")]),
                                              "001", "mark"), id="assessor-knowledgeable-for-001"),
    pytest.param(lambda: rules.check_assessor("Jo", frozenset({"assessor"}), eligible("001", [Cred("QCF_L3_AVRA")],
                                                                                      [Comp()]),
                                              "001", "mark"), id="assessor-avra-for-001"),
    pytest.param(lambda: rules.check_expert_witness_approval("Jo", []), id="expert-witness-all-three-facts"),
    pytest.param(lambda: rules.check_observer(U002, "002", observer("assessor", assessor=ELIGIBLE)),
                 id="observer-eligible-assessor"),
    pytest.param(lambda: rules.check_observer(U002, "002", observer("expert_witness", expert_witness_approved=True)),
                 id="observer-approved-expert-witness"),
    pytest.param(lambda: rules.check_observer(U002, "002", observer("witness", "expert_witness",
                                                                    expert_witness_approved=True)),
                 id="observer-witness-and-approved-expert-witness"),
    pytest.param(lambda: rules.check_observer(U002, "002", observer("assessor", "expert_witness", assessor=AVRA_ONLY,
                                                                    expert_witness_approved=True)),
                 id="observer-ineligible-assessor-but-approved-expert-witness"),
    pytest.param(lambda: rules.check_witness_details(WITNESS, signed=True), id="witness-complete-and-signed"),
    pytest.param(lambda: rules.check_witness_details(WITNESS | {"witness_related": True}, signed=True,
                                                     allow_related=True), id="witness-related-where-centre-allows"),
    pytest.param(lambda: rules.check_iqa_independence(1, 2, [3, 4], "Ivy"), id="iqa-independent"),
    pytest.param(lambda: rules.check_iqa_independence(1, 2, [3, 4], "Ivy", decision_assessor_ids=[2, 5],
                                                      sign_off=True), id="iqa-independent-of-sign-off"),
    pytest.param(lambda: rules.check_candidate_age(date(2010, 11, 23), date(2026, 11, 23)), id="age-16-on-the-day"),
    pytest.param(lambda: rules.check_candidate_age(date(2008, 2, 29), date(2024, 2, 29)), id="age-29-feb-birthday"),
    pytest.param(lambda: rules.check_candidate_age(date(2084, 2, 29), date(2100, 3, 1)),
                 id="age-29-feb-born-16-on-1-march-of-non-leap-year"),
    pytest.param(lambda: rules.check_candidate_age(date(2015, 1, 1), ON, None), id="age-no-minimum"),
    pytest.param(lambda: rules.check_signed_content_unchanged(["abc", "abc"], "abc"), id="signed-content-unchanged"),
    pytest.param(lambda: rules.check_signed_content_unchanged([], "abc"), id="unsigned-content-changed"),
    pytest.param(lambda: rules.check_unit_unlocked(None, "002"), id="unit-not-signed-off"),
    pytest.param(lambda: rules.check_reopen("Jo", True, "Criterion 4.3 was recorded against the wrong evidence.",
                                            "002"), id="reopen-with-reason"),
]


@pytest.mark.parametrize("check", ACCEPTS)
def test_rule_accepts(check):
    """What the handbook allows passes the rule without a refusal."""
    assert check() is None


# --- Every rule, refusing ----------------------------------------------------------------------------

REFUSALS = [
    # (check, code, field, phrases the message must contain)
    *[pytest.param(lambda m=m: rules.check_method(U002, "002", m), "rpl_not_allowed", "method",
                   ["Recognition of prior learning", "§4", "Unit 002", "evidence of the candidate's current work"],
                   id=f"method-{m}") for m in ("rpl", "RPL", "apl", "prior_certificate", "exemption")],
    pytest.param(lambda: rules.check_method(U001, "001", "rpl"), "rpl_not_allowed", "method",
                 ["not allowed", "Unit 001"], id="method-rpl-unit-001"),
    pytest.param(lambda: rules.check_method(U002, "002", "assignment"), "method_not_allowed", "method",
                 ["'assignment' is not an assessment method for Unit 002", "observation, work product, witness "
                  "testimony, professional discussion, questioning", "§4"], id="method-assignment-for-002"),
    pytest.param(lambda: rules.check_method(U002, "002", "simulation"), "method_not_allowed", "method",
                 ["'simulation' is not an assessment method"], id="method-unknown"),
    pytest.param(lambda: rules.check_method(U001, "001", "work_product"), "method_not_allowed", "method",
                 ["Unit 001 is assessed by an assignment", "§4, Assessment of the qualification",
                  "Record the assignment result instead"], id="method-work-product-for-001"),
    pytest.param(lambda: rules.check_activity_date(date(2025, 11, 22), REGISTERED, ON), "rpl_not_allowed",
                 "activity_date", ["22 November 2025", "registration on 23 November 2025", "prior learning",
                                   "§4, Recognition of prior learning", "Record evidence of work done since"],
                 id="date-day-before-registration"),
    pytest.param(lambda: rules.check_activity_date(date(2026, 11, 24), REGISTERED, ON), "future_activity_date",
                 "activity_date", ["24 November 2026", "in the future", "correct the date"], id="date-tomorrow"),
    pytest.param(lambda: rules.check_setting(U002, "long_term_care", None, True), "simulation_not_allowed", "setting",
                 ["marked as simulated", "real work", "§4, Assessment strategy", "Record an activity from the "
                  "candidate's real work"], id="setting-simulated"),
    pytest.param(lambda: rules.check_setting(U002, "other", "Role play in the training centre", False),
                 "simulation_not_allowed", "setting",
                 ["'Role play in the training centre'", "simulated or classroom", "§4"], id="setting-role-play"),
    pytest.param(lambda: rules.check_setting(U002, "long_term_care", "Classroom practice session", False),
                 "simulation_not_allowed", "setting", ["'Classroom practice session'", "real work activities"],
                 id="setting-classroom-detail-on-a-real-setting"),
    pytest.param(lambda: rules.check_setting(U002, "other", None, False), "simulation_not_allowed", "setting_detail",
                 ["Name the real work setting", "§4"], id="setting-other-without-detail"),
    pytest.param(lambda: rules.check_setting(U002, "other", "   ", False), "simulation_not_allowed", "setting_detail",
                 ["Name the real work setting"], id="setting-other-blank-detail"),
    pytest.param(lambda: rules.check_setting(U002, None, None, False), "simulation_not_allowed", "setting",
                 ["Choose the real work setting", "people living in their own home", "§4"], id="setting-missing"),
    pytest.param(lambda: rules.check_setting(U002, "classroom", None, False), "simulation_not_allowed", "setting",
                 ["Choose the real work setting"], id="setting-unknown-code"),
    pytest.param(lambda: rules.check_assessor("Jo Bloggs", frozenset({"assessor"}),
                                              eligible("002", [Cred()], [Comp("knowledgeable")]), "002", "judge 2.1"),
                 "assessor_not_eligible", "assessor",
                 ["Jo Bloggs cannot judge 2.1", "not recorded as occupationally competent", "§2, Assessors",
                  "Ask an eligible assessor"], id="assessor-only-knowledgeable-for-002"),
    pytest.param(lambda: rules.check_assessor("Jo Bloggs", frozenset({"assessor"}), AVRA_ONLY, "002", "judge 2.1"),
                 "assessor_not_eligible", "assessor", ["holds none of the qualifications", "Unit 002"],
                 id="assessor-avra-for-002"),
    pytest.param(lambda: rules.check_assessor("Jo Bloggs", frozenset({"iqa"}), ELIGIBLE, "002", "accept evidence"),
                 "assessor_not_eligible", "assessor", ["does not hold the assessor role"], id="assessor-role-missing"),
    pytest.param(lambda: rules.check_expert_witness_approval("Jo Bloggs", rules.expert_witness_gaps(
        "", "Nurse", None, "Clinical lead")), "expert_witness_not_eligible", "working_knowledge",
        ["Jo Bloggs cannot be approved", "working knowledge", "§2, Expert witness", "Record all three facts"],
        id="expert-witness-no-working-knowledge"),
    pytest.param(lambda: rules.check_expert_witness_approval("Jo Bloggs", rules.expert_witness_gaps(
        "Trained", " ", "A1", None)), "expert_witness_not_eligible", "occupational_competence",
        ["occupational competence", "§2, Expert witness"], id="expert-witness-no-competence"),
    pytest.param(lambda: rules.check_expert_witness_approval("Jo Bloggs", rules.expert_witness_gaps(
        "Trained", "Nurse", None, "")), "expert_witness_not_eligible", "assessment_qualification",
        ["qualification in assessing workplace performance or a work role"], id="expert-witness-no-qual-or-role"),
    pytest.param(lambda: rules.check_observer(U002, "002", observer("assessor", assessor=ELIGIBLE,
                                                                    is_the_candidate=True)),
                 "observer_not_eligible", "observer",
                 ["Jo Bloggs is the candidate", "Upload a work product", "§4, Assessment strategy"],
                 id="observer-the-candidate"),
    pytest.param(lambda: rules.check_observer(U002, "002", observer("witness")), "observer_not_eligible", "observer",
                 ["Jo Bloggs is a witness", "record it as witness testimony instead", "§4"], id="observer-witness"),
    pytest.param(lambda: rules.check_observer(U002, "002", observer("assessor", assessor=AVRA_ONLY)),
                 "observer_not_eligible", "observer",
                 ["not eligible to assess Unit 002", "holds none of the qualifications", "Ask an eligible assessor"],
                 id="observer-assessor-not-eligible-for-002"),
    pytest.param(lambda: rules.check_observer(U002, "002", observer()), "observer_not_eligible", "observer",
                 ["neither an eligible assessor nor an approved expert witness"], id="observer-nobody"),
    pytest.param(lambda: rules.check_observer(U002, "002", observer("expert_witness")),
                 "expert_witness_not_eligible", "observer",
                 ["Jo Bloggs is not an approved expert witness", "§2, Expert witness",
                  "record witness testimony instead"], id="observer-unapproved-expert-witness"),
    pytest.param(lambda: rules.check_observer(U002, "002", observer("expert_witness", expert_witness_approved=(
        rules.expert_witness_approved([Approval(withdrawn_on=date(2026, 6, 1))], ON)))),
        "expert_witness_not_eligible", "observer", ["not an approved expert witness"],
        id="observer-expert-witness-approval-withdrawn"),
    *[pytest.param(lambda k=k: rules.check_witness_details(WITNESS | {k: "  "}, signed=True),
                   "witness_details_missing", k, [rules.WITNESS_FIELDS[k], "RF03", "Add it"], id=f"witness-no-{k}")
      for k in rules.WITNESS_FIELDS],
    pytest.param(lambda: rules.check_witness_details({}, signed=True), "witness_details_missing", "witness_name",
                 ["the witness's name, their job role, their working relationship to the candidate, how to contact",
                  "Add them"], id="witness-nothing"),
    pytest.param(lambda: rules.check_witness_details(WITNESS | {"witness_related": True}, signed=True),
                 "witness_details_missing", "witness_related", ["related to the candidate", "Ask a colleague"],
                 id="witness-related"),
    pytest.param(lambda: rules.check_witness_details(WITNESS, signed=False), "witness_details_missing",
                 "witness_signature", ["must sign their testimony", "can sign on this device"], id="witness-unsigned"),
    pytest.param(lambda: rules.check_iqa_independence(1, 1, [2], "Ivy Quinn"), "iqa_own_assessment", "iqa",
                 ["Ivy Quinn made this assessment decision", "§2, Centre staffing", "Another IQA must sample it"],
                 id="iqa-own-decision"),
    pytest.param(lambda: rules.check_iqa_independence(1, 2, [3, 1], "Ivy Quinn"), "iqa_own_assessment", "iqa",
                 ["Ivy Quinn recorded evidence this decision rests on", "Another IQA"], id="iqa-recorded-evidence"),
    pytest.param(lambda: rules.check_iqa_independence(1, 1, [], "Ivy Quinn", sign_off=True), "iqa_own_assessment",
                 "iqa", ["Ivy Quinn signed this unit off", "§2, Centre staffing"], id="iqa-own-sign-off"),
    pytest.param(lambda: rules.check_iqa_independence(1, 2, [3], "Ivy Quinn", decision_assessor_ids=[2, 1],
                                                      sign_off=True), "iqa_own_assessment", "iqa",
                 ["Ivy Quinn made assessment decisions this unit sign-off rests on"],
                 id="iqa-sign-off-on-own-decision"),
    pytest.param(lambda: rules.check_iqa_independence(1, 2, [1], "Ivy Quinn", decision_assessor_ids=[2],
                                                      sign_off=True), "iqa_own_assessment", "iqa",
                 ["Ivy Quinn recorded evidence this unit sign-off rests on"], id="iqa-sign-off-on-own-evidence"),
    pytest.param(lambda: rules.check_candidate_age(date(2010, 11, 23), date(2026, 11, 22)), "candidate_under_16",
                 "date_of_birth", ["would be 15", "22 November 2026", "§2, Age restrictions",
                                   "Register them once they are 16"], id="age-day-before-16th-birthday"),
    pytest.param(lambda: rules.check_candidate_age(date(2008, 2, 29), date(2024, 2, 28)), "candidate_under_16",
                 "date_of_birth", ["would be 15", "28 February 2024"], id="age-29-feb-day-before"),
    pytest.param(lambda: rules.check_candidate_age(date(2084, 2, 29), date(2100, 2, 28)), "candidate_under_16",
                 "date_of_birth", ["would be 15"], id="age-29-feb-non-leap-28-feb"),
    pytest.param(lambda: rules.check_candidate_age(date(2027, 1, 1), ON), "candidate_under_16", "date_of_birth",
                 ["would be 0"], id="age-born-after-registration"),
    pytest.param(lambda: rules.check_signed_content_unchanged(["abc"], "abd"), "signed_content_changed", None,
                 ["has been signed", "Save your changes as a new version", "signed version stays readable"],
                 id="signed-content-changed"),
    pytest.param(lambda: rules.check_unit_unlocked(date(2026, 11, 1), "002"), "unit_locked", None,
                 ["Unit 002 was signed off on 1 November 2026", "locked", "can reopen it, giving a reason"],
                 id="unit-locked"),
    pytest.param(lambda: rules.check_reopen("Wendy Witness", False, "Criterion 4.3 was recorded in error.", "002"),
                 "unit_locked", None, ["Wendy Witness cannot reopen Unit 002", "only an eligible assessor or an IQA"],
                 id="reopen-not-allowed"),
    pytest.param(lambda: rules.check_reopen("Jo", True, "   ", "002"), "unit_locked", "reason",
                 ["Give a reason for reopening Unit 002", "audit log"], id="reopen-without-reason"),
    pytest.param(lambda: rules.check_reopen("Jo", True, "oops", "002"), "unit_locked", "reason",
                 ["Give a reason"], id="reopen-reason-too-short"),
]


@pytest.mark.parametrize(("check", "code", "field", "phrases"), REFUSALS)
def test_rule_refuses(check, code, field, phrases):
    """What the handbook forbids is refused with the rule's code, the field to fix, and a message saying why."""
    with pytest.raises(RuleViolation) as refused:
        check()
    assert (refused.value.code, refused.value.field) == (code, field)
    for phrase in phrases:
        assert phrase in refused.value.message


# Rules enforced as readiness blockers at sign-off rather than by a rules.check_* function.
BLOCKER_CODES = {"criteria_not_met", "declaration_missing", "observation_required"}
# Enforced only by services.assessment.sign_off: tested in tests/services/test_rules_paths.py.
SERVICE_ONLY_CODES = {"signoff_declaration_missing"}


def _codes(params) -> set[str]:
    return {p.values[1] for p in params}


def test_every_rule_code_has_a_refusal_test():
    """Every rule in the catalogue is refused by at least one case here, or is a readiness or sign-off rule."""
    assert set(rules.RULES) == _codes(REFUSALS) | BLOCKER_CODES | SERVICE_ONLY_CODES


def test_every_rule_names_its_source():
    """Every rule in the catalogue records its handbook or practice source and a one-sentence summary."""
    assert all(r.source and r.summary.endswith(".") for r in rules.RULES.values())


@pytest.mark.parametrize(("evidence", "decisions", "code"), [
    pytest.param([], [], "criteria_not_met", id="criteria-not-met"),
    pytest.param([readiness.EvidenceFacts("w", "My profile", "work_product", "submitted", frozenset({"2.1"}),
                                          candidate_authored=True)], [], "declaration_missing",
                 id="declaration-missing"),
    pytest.param([readiness.EvidenceFacts("t", "Testimony", "witness_testimony", "accepted", frozenset({"2.1"}))], [],
                 "observation_required", id="observation-required"),
])
def test_sign_off_rules_block_readiness(evidence, decisions, code):
    """The sign-off rules refuse by blocking readiness with their code."""
    state = readiness.assess("002", U002, CRITERIA, evidence, decisions)
    assert code in {b.code for b in state.blockers}
    assert not state.ready


def test_sign_off_rules_accept_a_complete_portfolio():
    """With an accepted eligible observation, every criterion met and declarations signed, nothing blocks."""
    codes = frozenset(c for c, _ in CRITERIA)
    evidence = [readiness.EvidenceFacts("o", "Observation", "observation", "accepted", codes, observer_eligible=True),
                readiness.EvidenceFacts("w", "Profile", "work_product", "accepted", codes, candidate_authored=True,
                                        has_declaration=True)]
    state = readiness.assess("002", U002, CRITERIA, evidence,
                             [readiness.DecisionFacts(c, "met", frozenset({"o"})) for c in codes])
    assert state.blockers == ()
    assert state.ready


# --- Details of the rule functions -------------------------------------------------------------------


@pytest.mark.parametrize(("unit", "creds", "comps", "on", "eligible_", "reason"), [
    ("002", [Cred()], [Comp()], ON, True, None),
    ("002", [Cred()], [Comp("knowledgeable")], ON, False, "is not recorded as occupationally competent"),
    ("001", [Cred()], [Comp("knowledgeable")], ON, True, None),
    ("002", [Cred("QCF_L3_AVRA")], [Comp()], ON, False, "holds none of the qualifications"),
    ("001", [Cred("QCF_L3_AVRA")], [Comp()], ON, True, None),
    ("002", [Cred("NVQ3_CARE")], [Comp()], ON, False, "holds none of the qualifications"),
    ("002", [Cred(withdrawn_on=date(2026, 6, 1))], [Comp()], ON, False, "has been withdrawn"),
    ("002", [Cred(withdrawn_on=ON)], [Comp()], ON, False, "has been withdrawn"),
    ("002", [Cred(withdrawn_on=date(2026, 12, 1))], [Comp()], ON, True, None),
    ("002", [Cred(awarded_on=date(2026, 12, 1))], [Comp()], ON, False, "holds none"),
    ("002", [Cred(awarded_on=None)], [Comp()], ON, True, None),
    ("002", [Cred(withdrawn_on=date(2026, 6, 1)), Cred("QTS")], [Comp()], ON, True, None),
    ("002", [Cred()], [Comp(withdrawn_on=date(2026, 6, 1))], ON, False, "not recorded as occupationally competent"),
    ("002", [Cred()], [Comp(withdrawn_on=date(2026, 6, 1))], date(2026, 5, 1), True, None),
    ("002", [], [], ON, False, "holds none"),
], ids=["a1-competent", "002-knowledgeable", "001-knowledgeable", "002-avra", "001-avra", "unlisted",
        "qualification-withdrawn-before", "qualification-withdrawn-that-day", "qualification-withdrawn-after",
        "awarded-after", "award-date-unknown", "one-withdrawn-one-in-force", "competence-withdrawn",
        "judged-before-competence-withdrawn", "nothing-recorded"])
def test_assessor_eligibility(unit, creds, comps, on, eligible_, reason):
    """Eligibility follows the unit's qualification list and competence level, as at the date."""
    result = eligible(unit, creds, comps, on)
    assert result.eligible is eligible_
    assert (not result.reasons) if eligible_ else any(reason in r for r in result.reasons)


def test_nothing_recorded_gives_both_reasons():
    """A person with no credentials is told both what qualification and what competence is missing."""
    assert len(eligible("002", [], []).reasons) == 2


@pytest.mark.parametrize(("facts", "missing"), [
    (("Trained", "Nurse", None, "Clinical lead"), []),
    (("Trained", "Nurse", "A1", None), []),
    (("", "Nurse", "A1", None), ["working knowledge"]),
    (("Trained", None, "A1", None), ["occupational competence"]),
    (("Trained", "Nurse", " ", " "), ["assessing workplace performance"]),
    ((None, None, None, None), ["working knowledge", "occupational competence", "assessing workplace performance"]),
], ids=["role", "qualification", "no-knowledge", "no-competence", "no-qual-or-role", "none"])
def test_expert_witness_gaps(facts, missing):
    """Each of the three expert witness conditions is reported when missing, in order."""
    gaps = rules.expert_witness_gaps(*facts)
    assert len(gaps) == len(missing)
    assert all(m in g for m, g in zip(missing, gaps, strict=True))


@pytest.mark.parametrize(("approvals", "approved"), [
    ([Approval()], True),
    ([Approval(approved_on=date(2026, 12, 1))], False),
    ([Approval(withdrawn_on=date(2026, 6, 1))], False),
    ([Approval(withdrawn_on=ON)], False),
    ([Approval(withdrawn_on=date(2026, 12, 1))], True),
    ([Approval(working_knowledge="")], False),
    ([Approval(evaluating_role=None)], False),
    ([Approval(evaluating_role=None, assessment_qualification="D32/D33")], True),
    ([Approval(withdrawn_on=date(2026, 6, 1)), Approval(approved_on=date(2026, 7, 1))], True),
    ([], False),
], ids=["approved", "approved-later", "withdrawn-before", "withdrawn-that-day", "withdrawn-later", "gap",
        "no-qual-or-role", "qualification-instead-of-role", "re-approved", "never"])
def test_expert_witness_approved(approvals, approved):
    """Only an approval in force on the date and meeting all three conditions counts."""
    assert rules.expert_witness_approved(approvals, ON) is approved


@pytest.mark.parametrize(("born", "on", "age"), [
    (date(2010, 11, 23), date(2026, 11, 23), 16),
    (date(2010, 11, 23), date(2026, 11, 22), 15),
    (date(2008, 2, 29), date(2024, 2, 28), 15),
    (date(2008, 2, 29), date(2024, 2, 29), 16),
    (date(2008, 2, 29), date(2025, 2, 28), 16),
    (date(2084, 2, 29), date(2100, 2, 28), 15),
    (date(2084, 2, 29), date(2100, 3, 1), 16),
])
def test_age_on(born, on, age):
    """Age counts whole years, a 29 February birthday falling on 1 March in a non-leap year."""
    assert rules.age_on(born, on) == age


@pytest.mark.parametrize(("d", "text"), [(date(2025, 3, 3), "3 March 2025"), (date(2026, 11, 23), "23 November 2026")])
def test_long_date(d, text):
    """Dates in messages are written the way a person writes them."""
    assert rules.long_date(d) == text


def test_rule_violation_is_a_refusal_with_its_rule():
    """A rule violation is a refusal that names its rule and reports itself as plain data."""
    violation = RuleViolation("unit_locked", "Locked.", field="unit")
    assert isinstance(violation, Refusal)
    assert violation.rule.source == "Audit practice"
    assert violation.as_dict() == {"kind": "rule", "code": "unit_locked", "message": "Locked.", "field": "unit"}


def test_rule_violation_refuses_an_unknown_code():
    """A refusal cannot be raised with a code that is not in the catalogue."""
    with pytest.raises(ValueError, match="unknown rule code"):
        RuleViolation("made_up", "No.")


def test_observer_candidate_is_refused_before_any_role():
    """The candidate cannot observe themselves even if they also hold an eligible assessor role."""
    with pytest.raises(RuleViolation) as refused:
        rules.check_observer(U002, "002", observer("assessor", "expert_witness", assessor=ELIGIBLE,
                                                   expert_witness_approved=True, is_the_candidate=True))
    assert refused.value.code == "observer_not_eligible"
