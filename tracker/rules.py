"""The handbook's rules as pure functions: every path into the data calls these.

Each rule refuses with a `RuleViolation` carrying a stable code and a plain-English
message that says what was refused, why (citing the handbook), and what to do instead.
Nothing here touches the database or the web: callers load the facts and pass them in.
"""
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from .errors import Refusal
from .specpacks.schema import AssessmentStrategy

HANDBOOK = "City & Guilds 3085 handbook"


@dataclass(frozen=True)
class Rule:
    """A handbook rule the tracker enforces."""

    code: str
    summary: str
    source: str


RULES: dict[str, Rule] = {
    r.code: r
    for r in (
        Rule("observation_required", "Unit 002 needs observation by an assessor or an expert witness.",
             "§4 Assessment strategy"),
        Rule("observer_not_eligible", "Only an eligible assessor or an approved expert witness may record an observation.",
             "§4 Assessment strategy; §2 Assessors, Expert witness"),
        Rule("rpl_not_allowed", "RPL is not allowed for this qualification.", "§4 Recognition of prior learning"),
        Rule("future_activity_date", "Evidence records work that has already happened.", "Authenticity of evidence"),
        Rule("simulation_not_allowed", "Unit 002 evidence must come from real work in a real work environment.",
             "§4 Assessment strategy; §2 Candidate entry requirements"),
        Rule("method_not_allowed", "Only the unit's assessment methods may be used.", "§4 Assessment of the qualification"),
        Rule("assessor_not_eligible", "Only an occupationally competent assessor holding a listed qualification may judge.",
             "§2 Assessors and internal quality assurance staff"),
        Rule("expert_witness_not_eligible", "An expert witness must meet the handbook's three conditions and be approved.",
             "§2 Expert witness"),
        Rule("witness_details_missing", "Witness testimony names, describes and is signed by a witness who is not a relative.",
             "C&G recording form RF03"),
        Rule("iqa_own_assessment", "Assessors cannot internally quality assure their own assessments.", "§2 Centre staffing"),
        Rule("candidate_under_16", "Candidates under 16 cannot be registered.", "§2 Age restrictions"),
        Rule("signed_content_changed", "Signed evidence cannot change silently.", "Authenticity of evidence"),
        Rule("unit_locked", "A signed-off unit does not change.", "Audit practice"),
        Rule("criteria_not_met", "Every assessment criterion is judged met on accepted evidence before sign-off.",
             "§5 Unit 002 assessment criteria"),
        Rule("declaration_missing", "Candidate-authored evidence carries the candidate's declaration of authenticity.",
             "Authenticity of evidence"),
        Rule("signoff_declaration_missing", "The assessor signs the unit declaration (RF09) at sign-off.",
             "C&G recording form RF09"),
    )
}

RPL_METHODS = frozenset({"rpl", "apl", "prior_learning", "prior_certificate", "exemption", "credit_transfer"})
METHOD_LABELS = {
    "observation": "observation",
    "work_product": "work product",
    "witness_testimony": "witness testimony",
    "professional_discussion": "professional discussion",
    "questioning": "questioning",
    "assignment": "assignment",
}


class RuleViolation(Refusal):
    """A refusal by one of the handbook's rules."""

    kind = "rule"

    def __init__(self, code: str, message: str, *, field: str | None = None):
        if code not in RULES:
            raise ValueError(f"unknown rule code {code!r}")
        super().__init__(code, message, field=field)

    @property
    def rule(self) -> Rule:
        """Return the rule that refused."""
        return RULES[self.code]


def long_date(d: date) -> str:
    """Format a date the way a person writes it: 3 March 2025."""
    return f"{d.day} {d:%B %Y}"


def _method_list(methods: Iterable[str]) -> str:
    return ", ".join(METHOD_LABELS.get(m, m) for m in methods)


# --- Methods, dates and settings -------------------------------------------------------------


def check_method(strategy: AssessmentStrategy, unit_code: str, method: str) -> None:
    """Refuse a method the unit's assessment strategy does not allow (RPL above all)."""
    if method.lower() in RPL_METHODS and not strategy.rpl_allowed:
        raise RuleViolation(
            "rpl_not_allowed",
            "Recognition of prior learning (RPL) is not allowed for this qualification "
            f"({HANDBOOK} §4, Recognition of prior learning): previous experience or certificates "
            f"cannot count towards Unit {unit_code}. Record evidence of the candidate's current work instead.",
            field="method",
        )
    if method in strategy.methods:
        return
    if strategy.mode == "assignment":
        raise RuleViolation(
            "method_not_allowed",
            f"Unit {unit_code} is assessed by an assignment set by the awarding body and marked internally "
            f"({HANDBOOK} §4, Assessment of the qualification), not by portfolio evidence. "
            "Record the assignment result instead.",
            field="method",
        )
    raise RuleViolation(
        "method_not_allowed",
        f"'{METHOD_LABELS.get(method, method)}' is not an assessment method for Unit {unit_code}. "
        f"Its methods are {_method_list(strategy.methods)} ({HANDBOOK} §4, Assessment strategy).",
        field="method",
    )


def check_activity_date(activity_date: date, registration_date: date, today: date, *, rpl_allowed: bool = False) -> None:
    """Refuse an activity dated before registration (prior learning) or in the future."""
    if activity_date > today:
        raise RuleViolation(
            "future_activity_date",
            f"The activity date {long_date(activity_date)} is in the future. Evidence records work that has "
            "already happened: correct the date.",
            field="activity_date",
        )
    if activity_date < registration_date and not rpl_allowed:
        raise RuleViolation(
            "rpl_not_allowed",
            f"This activity is dated {long_date(activity_date)}, before the candidate's registration on "
            f"{long_date(registration_date)}. Work from before registration is prior learning, and RPL is not "
            f"allowed for this qualification ({HANDBOOK} §4, Recognition of prior learning). "
            "Record evidence of work done since registration.",
            field="activity_date",
        )


def _simulation_refusal(what: str) -> RuleViolation:
    return RuleViolation(
        "simulation_not_allowed",
        f"{what} Unit 002 evidence must be generated from real work activities in a real work environment "
        f"({HANDBOOK} §4, Assessment strategy; §2, Candidate entry requirements): simulated, role-play or "
        "classroom activity cannot be used. Record an activity from the candidate's real work.",
        field="setting",
    )


def check_setting(strategy: AssessmentStrategy, setting: str | None, detail: str | None, simulated: bool) -> None:
    """Refuse simulated activity or a setting that is not a real work setting."""
    if not strategy.real_work_only:
        return
    if simulated:
        raise _simulation_refusal("This activity is marked as simulated.")
    detail_text = (detail or "").strip()
    # Markers match at the start of a word: "role play" and "simulated" are refused, "Hammock Lane" is not.
    marker = detail_text and next((m for m in strategy.simulation_markers
                                   if re.search(rf"\b{re.escape(m.lower())}", detail_text.lower())), None)
    if marker:
        raise _simulation_refusal(f"The setting '{detail_text}' describes a simulated or classroom activity.")
    codes = {s.code for s in strategy.settings}
    if setting == "other":
        if not detail_text:
            raise RuleViolation(
                "simulation_not_allowed",
                "Name the real work setting where the activity took place (for example a day service or a "
                f"supported living house): Unit 002 evidence must come from real work ({HANDBOOK} §4).",
                field="setting_detail",
            )
        return
    if setting not in codes:
        labels = "; ".join(s.label.lower() for s in strategy.settings)
        raise RuleViolation(
            "simulation_not_allowed",
            f"Choose the real work setting of the activity: {labels}; or another named work setting. "
            f"Unit 002 evidence must come from real work ({HANDBOOK} §4, Assessment strategy).",
            field="setting",
        )


# --- Assessors, expert witnesses and observers ----------------------------------------------


class Credential(Protocol):
    """What the rules read from an assessor qualification record."""

    qualification_code: str
    awarded_on: date | None
    withdrawn_on: date | None


class Competence(Protocol):
    """What the rules read from an occupational competence record."""

    level: str
    withdrawn_on: date | None


class Approval(Protocol):
    """What the rules read from an expert witness approval."""

    working_knowledge: str
    occupational_competence: str
    assessment_qualification: str | None
    evaluating_role: str | None
    approved_on: date
    withdrawn_on: date | None


@dataclass(frozen=True)
class Eligibility:
    """Whether a person may assess a unit, and if not, why not."""

    eligible: bool
    reasons: tuple[str, ...] = ()


def _in_force(start: date | None, withdrawn: date | None, on: date) -> bool:
    return (start is None or start <= on) and (withdrawn is None or withdrawn > on)


def assessor_eligibility(
    strategy: AssessmentStrategy, unit_code: str, credentials: Sequence[Credential],
    competences: Sequence[Competence], on: date,
) -> Eligibility:
    """Derive from the recorded credentials whether a person may assess a unit on a date."""
    reasons = []
    listed = set(strategy.assessor_qualifications)
    if not any(c.qualification_code in listed and _in_force(c.awarded_on, c.withdrawn_on, on) for c in credentials):
        reasons.append(
            f"holds none of the qualifications the handbook lists for Unit {unit_code} assessors "
            f"({', '.join(strategy.assessor_qualifications)}), or the one recorded has been withdrawn"
        )
    levels = {"competent"} if strategy.assessor_competence == "competent" else {"competent", "knowledgeable"}
    if not any(c.level in levels and _in_force(None, c.withdrawn_on, on) for c in competences):
        reasons.append(f"is not recorded as occupationally {strategy.assessor_competence}")
    return Eligibility(not reasons, tuple(reasons))


def check_assessor(name: str, roles: frozenset[str], eligibility: Eligibility, unit_code: str, action: str) -> None:
    """Refuse a judgement (accept, refer, decide, sign off) by anyone but an eligible assessor."""
    if "assessor" in roles and eligibility.eligible:
        return
    why = "does not hold the assessor role" if "assessor" not in roles else " and ".join(eligibility.reasons)
    raise RuleViolation(
        "assessor_not_eligible",
        f"{name} cannot {action}: only an eligible assessor may judge Unit {unit_code} evidence, and {name} {why}. "
        f"Assessors must be occupationally competent and hold one of the listed qualifications ({HANDBOOK} §2, "
        "Assessors). Ask an eligible assessor, or record the missing credential first.",
        field="assessor",
    )


def expert_witness_gaps(
    working_knowledge: str | None, occupational_competence: str | None,
    assessment_qualification: str | None, evaluating_role: str | None,
) -> list[str]:
    """List the handbook's expert witness conditions that the recorded facts do not meet."""
    gaps = []
    if not (working_knowledge or "").strip():
        gaps.append("a working knowledge of the units on which their expertise is based")
    if not (occupational_competence or "").strip():
        gaps.append("occupational competence in their area of expertise")
    if not ((assessment_qualification or "").strip() or (evaluating_role or "").strip()):
        gaps.append("either a qualification in assessing workplace performance or a work role that involves "
                    "evaluating the everyday practice of staff")
    return gaps


def check_expert_witness_approval(name: str, gaps: list[str]) -> None:
    """Refuse to approve an expert witness who does not meet all three conditions."""
    if gaps:
        raise RuleViolation(
            "expert_witness_not_eligible",
            f"{name} cannot be approved as an expert witness: the record does not show {'; '.join(gaps)} "
            f"({HANDBOOK} §2, Expert witness). Record all three facts to approve them.",
            field=next(f for key, f in (("working knowledge", "working_knowledge"),
                                        ("occupational competence", "occupational_competence"),
                                        ("", "assessment_qualification")) if key in gaps[0]),
        )


def expert_witness_approved(approvals: Sequence[Approval], on: date) -> bool:
    """Say whether a person holds an approval, meeting all three conditions, in force on a date."""
    return any(
        _in_force(a.approved_on, a.withdrawn_on, on)
        and not expert_witness_gaps(a.working_knowledge, a.occupational_competence,
                                    a.assessment_qualification, a.evaluating_role)
        for a in approvals
    )


@dataclass(frozen=True)
class Observer:
    """The facts about the person recording an observation."""

    name: str
    roles: frozenset[str]
    assessor: Eligibility = field(default_factory=lambda: Eligibility(False))
    expert_witness_approved: bool = False
    is_the_candidate: bool = False


def check_observer(strategy: AssessmentStrategy, unit_code: str, observer: Observer) -> None:
    """Refuse an observation recorded by anyone but an eligible assessor or approved expert witness."""
    name = observer.name
    if observer.is_the_candidate:
        raise _observer_refusal(f"{name} is the candidate: a candidate cannot record an observation of their own "
                                "practice. Upload a work product or ask your assessor to observe you.")
    if "assessor" in strategy.observers and "assessor" in observer.roles and observer.assessor.eligible:
        return
    if "expert_witness" in strategy.observers and "expert_witness" in observer.roles:
        if observer.expert_witness_approved:
            return
        raise RuleViolation(
            "expert_witness_not_eligible",
            f"{name} is not an approved expert witness, so cannot record an observation for Unit {unit_code}. "
            "An expert witness must have working knowledge of the units, be occupationally competent, and hold an "
            "assessing qualification or a role evaluating staff practice, and be approved by the centre "
            f"({HANDBOOK} §2, Expert witness). Ask the centre to approve them, or record witness testimony instead.",
            field="observer",
        )
    if "assessor" in observer.roles:
        raise _observer_refusal(
            f"{name} is not eligible to assess Unit {unit_code}: {name} {' and '.join(observer.assessor.reasons)} "
            f"({HANDBOOK} §2, Assessors). Ask an eligible assessor to observe."
        )
    if "witness" in observer.roles:
        raise _observer_refusal(
            f"{name} is a witness, not an assessor or expert witness, so cannot record an observation. What a "
            "witness saw is witness testimony: record it as witness testimony instead."
        )
    raise _observer_refusal(f"{name} is neither an eligible assessor nor an approved expert witness.")


def _observer_refusal(why: str) -> RuleViolation:
    return RuleViolation(
        "observer_not_eligible",
        f"{why} Unit 002 observations must be made by an eligible assessor or an approved expert witness "
        f"({HANDBOOK} §4, Assessment strategy).",
        field="observer",
    )


# --- Witness testimony ------------------------------------------------------------------------

WITNESS_FIELDS = {
    "witness_name": "the witness's name",
    "witness_role": "their job role",
    "witness_relationship": "their working relationship to the candidate",
    "witness_contact": "how to contact them",
}


def check_witness_details(details: dict[str, Any], *, signed: bool, allow_related: bool = False) -> None:
    """Refuse testimony that does not name, describe and carry the signature of an unrelated witness."""
    missing = [k for k in WITNESS_FIELDS if not str(details.get(k) or "").strip()]
    if missing:
        raise RuleViolation(
            "witness_details_missing",
            f"Witness testimony must give {', '.join(WITNESS_FIELDS[k] for k in missing)}. Add "
            f"{'it' if len(missing) == 1 else 'them'}, so the assessor and quality assurers can check the "
            "testimony (C&G recording form RF03).",
            field=missing[0],
        )
    if details.get("witness_related") and not allow_related:
        raise RuleViolation(
            "witness_details_missing",
            "A witness who is related to the candidate cannot give testimony at this centre. Ask a colleague, "
            "manager or other professional who saw the candidate's practice.",
            field="witness_related",
        )
    if not signed:
        raise RuleViolation(
            "witness_details_missing",
            "The witness must sign their testimony: it cannot be submitted unsigned. The witness can sign on "
            "this device, without an account.",
            field="witness_signature",
        )


# --- Quality assurance, registration, signatures, locks ---------------------------------------


def check_iqa_independence(iqa_id: Any, assessor_id: Any, evidence_recorder_ids: Iterable[Any], iqa_name: str, *,
                           decision_assessor_ids: Iterable[Any] = (), sign_off: bool = False) -> None:
    """Refuse an IQA reviewing their own decision or sign-off, or one resting on their decisions or evidence."""
    subject = "unit sign-off" if sign_off else "decision"
    if iqa_id == assessor_id:
        what = "signed this unit off" if sign_off else "made this assessment decision"
    elif iqa_id in set(decision_assessor_ids):
        what = f"made assessment decisions this {subject} rests on"
    elif iqa_id in set(evidence_recorder_ids):
        what = f"recorded evidence this {subject} rests on"
    else:
        return
    raise RuleViolation(
        "iqa_own_assessment",
        f"{iqa_name} {what}, so cannot quality assure it: assessors cannot internally quality assure their own "
        f"assessments ({HANDBOOK} §2, Centre staffing). Another IQA must sample it.",
        field="iqa",
    )


def age_on(date_of_birth: date, on: date) -> int:
    """Return a person's age in whole years on a date."""
    before_birthday = (on.month, on.day) < (date_of_birth.month, date_of_birth.day)
    return on.year - date_of_birth.year - before_birthday


def check_candidate_age(date_of_birth: date, registration_date: date, min_age: int | None = 16) -> None:
    """Refuse to register a candidate younger than the qualification's minimum age."""
    if min_age is None:
        return
    age = age_on(date_of_birth, registration_date)
    if age < min_age:
        raise RuleViolation(
            "candidate_under_16",
            f"This candidate would be {max(age, 0)} on the registration date {long_date(registration_date)}. "
            f"Candidates under {min_age} cannot be registered: the qualification is not approved for under-{min_age}s "
            f"({HANDBOOK} §2, Age restrictions). Register them once they are {min_age}.",
            field="date_of_birth",
        )


def check_signed_content_unchanged(signed_hashes: Iterable[str], new_hash: str) -> None:
    """Refuse to change content in place once anyone has signed it."""
    if any(h != new_hash for h in signed_hashes):
        raise RuleViolation(
            "signed_content_changed",
            "This evidence has been signed, and signed content cannot change. Save your changes as a new "
            "version instead: it will need signing again, and the signed version stays readable.",
        )


def check_unit_unlocked(signed_off_on: date | None, unit_code: str) -> None:
    """Refuse any change to a unit that has been signed off."""
    if signed_off_on is not None:
        raise RuleViolation(
            "unit_locked",
            f"Unit {unit_code} was signed off on {long_date(signed_off_on)}, so its evidence and decisions are "
            "locked. An eligible assessor or IQA can reopen it, giving a reason that is kept in the audit log.",
        )


def check_reopen(name: str, may_reopen: bool, reason: str, unit_code: str) -> None:
    """Refuse to reopen a signed-off unit without a reason or by someone who may not."""
    if not may_reopen:
        raise RuleViolation(
            "unit_locked",
            f"{name} cannot reopen Unit {unit_code}: only an eligible assessor or an IQA can reopen a signed-off unit.",
        )
    if len(reason.strip()) < 10:
        raise RuleViolation(
            "unit_locked",
            f"Give a reason for reopening Unit {unit_code} (at least a sentence): it is kept in the audit log.",
            field="reason",
        )
