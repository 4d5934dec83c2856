"""Every handbook rule refuses a pushed item exactly as the services refuse the web form (test 14, G20).

Judgements (accept, refer, decide, sign off) are not pushed from devices, so ``assessor_not_eligible`` cannot
arise on the sync path; an assessor not eligible for Unit 002 who pushes an observation is refused as an
ineligible observer, with the same code as on the web.
"""
from datetime import timedelta

import pytest

from support.factories import TODAY
from sync_support import as_json, content, item, push, register, snapshot
from tracker.errors import Refusal
from tracker.models import Role, User, new_id
from tracker.services import assessment, evidence

DIRECT = {
    "evidence.capture": lambda s, a, p: evidence.capture(s, a, p),
    "evidence.revise": lambda s, a, p: evidence.revise(s, a, p["evidence_id"], p["content"],
                                                       base_version=p["base_version"]),
    "evidence.sign": lambda s, a, p: evidence.sign(s, a, p["evidence_id"], p["signature"]),
    "evidence.submit": lambda s, a, p: evidence.submit(s, a, p["evidence_id"]),
}


def _assessed(factory, method="observation", **overrides):
    a = factory.assessor()
    c = factory.candidate(assessors=(a,))
    return a, "evidence.capture", factory.evidence_data(c, method, **overrides)


def _observer(make):
    def setup(factory):
        person, candidate = make(factory)
        return person, "evidence.capture", factory.evidence_data(candidate, "observation")
    return setup


def _witnessed(**overrides):
    def setup(factory):
        w = factory.user(Role.WITNESS)
        c = factory.candidate(assessors=(factory.assessor(),), witnesses=(w,))
        return w, "evidence.capture", factory.evidence_data(c, "witness_testimony", **overrides)
    return setup


def _unsigned_testimony_submitted(factory):
    w = factory.user(Role.WITNESS)
    c = factory.candidate(assessors=(factory.assessor(),), witnesses=(w,))
    draft = factory.capture(w, c, "witness_testimony", signatures=[], submit=False)
    return w, "evidence.submit", {"evidence_id": draft.id, "version": 1}


def _plain_witness(f):
    w = f.user(Role.WITNESS)
    return w, f.candidate(assessors=(f.assessor(),), witnesses=(w,))


def _avra_assessor(f):
    a = f.assessor(qualification="QCF_L3_AVRA")
    return a, f.candidate(assessors=(a,))


def _the_candidate(f):
    c = f.candidate(assessors=(f.assessor(),))
    return f.session.get(User, c.user_id), c


def _unapproved_expert_witness(f):
    e = f.expert_witness(approved=False)
    return e, f.candidate(assessors=(f.assessor(),), expert_witnesses=(e,))


def _locked(make_item):
    """After Unit 002 is signed off, with one draft left pending."""
    def setup(factory):
        a = factory.assessor()
        c = factory.candidate(assessors=(a,))
        accepted = factory.all_met(a, c)
        pending = factory.capture(a, c, "observation", criteria=[{"code": "4.3"}], submit=False)
        assessment.sign_off(factory.session, factory.actor(a), c.id, "002", declaration_signed=True)
        return a, *make_item(factory, c, accepted, pending)
    return setup


CASES = [
    pytest.param(lambda f: _assessed(f, "rpl"), "rpl_not_allowed", id="rpl-method"),
    pytest.param(lambda f: _assessed(f, activity_date=TODAY - timedelta(days=366)), "rpl_not_allowed",
                 id="rpl-before-registration"),
    pytest.param(lambda f: _assessed(f, activity_date=TODAY + timedelta(days=1)), "future_activity_date",
                 id="future-date"),
    pytest.param(lambda f: _assessed(f, simulated=True), "simulation_not_allowed", id="simulated"),
    pytest.param(lambda f: _assessed(f, setting="other", setting_detail="Role play in the classroom"),
                 "simulation_not_allowed", id="role-play"),
    pytest.param(_observer(_plain_witness), "observer_not_eligible", id="plain-witness-observes"),
    pytest.param(_observer(_avra_assessor), "observer_not_eligible", id="assessor-not-eligible-for-002-observes"),
    pytest.param(_observer(_the_candidate), "observer_not_eligible", id="candidate-observes-self"),
    pytest.param(_observer(_unapproved_expert_witness), "expert_witness_not_eligible",
                 id="unapproved-expert-witness"),
    pytest.param(_witnessed(witness_name=None), "witness_details_missing", id="testimony-unnamed"),
    pytest.param(_witnessed(witness_related=True), "witness_details_missing", id="testimony-by-relative"),
    pytest.param(_unsigned_testimony_submitted, "witness_details_missing", id="testimony-submitted-unsigned"),
    pytest.param(lambda f: _assessed(f, unit="001"), "method_not_allowed", id="unit-001-observation"),
    pytest.param(lambda f: _assessed(f, "work_product", unit="001"), "method_not_allowed", id="unit-001-product"),
    pytest.param(_locked(lambda f, c, acc, pend: ("evidence.capture", f.evidence_data(c, "observation"))),
                 "unit_locked", id="locked-capture"),
    pytest.param(_locked(lambda f, c, acc, pend: ("evidence.sign", {
        "evidence_id": acc.id, "version": 1, "signature": {"kind": "countersignature"}})),
        "unit_locked", id="locked-sign"),
    pytest.param(_locked(lambda f, c, acc, pend: ("evidence.submit", {"evidence_id": pend.id, "version": 1})),
                 "unit_locked", id="locked-submit"),
    pytest.param(_locked(lambda f, c, acc, pend: ("evidence.revise", {
        "evidence_id": pend.id, "base_version": 1, "content": content(f, c)})), "unit_locked", id="locked-revise"),
]


def _direct(session, actor, kind, payload) -> Refusal:
    """Call the service as the web form does, and return its refusal; nothing it did is kept."""
    savepoint = session.begin_nested()
    try:
        DIRECT[kind](session, actor, payload)
    except Refusal as refusal:
        return refusal
    finally:
        savepoint.rollback()
    raise AssertionError("the service accepted what the rule should refuse")


@pytest.mark.parametrize(("setup", "code"), CASES)
def test_rule_refuses_the_pushed_item_as_the_service_does(backend, session, factory, setup, code):
    """The pushed item is refused with the service's code and message, and only its receipt is written."""
    person, kind, payload = setup(factory)
    payload = as_json(payload | ({"id": new_id()} if kind == "evidence.capture" else {}))
    device = register(session, person)
    direct = _direct(session, factory.actor(person, device.id), kind, payload)
    before = snapshot(session)
    [answer] = push(session, device, person, [item(1, kind, payload)])
    assert direct.code == code
    assert (answer.verdict, answer.code, answer.message) == ("refused", direct.code, direct.message)
    after = snapshot(session)
    assert {k: after[k] - before[k] for k in after} == {"Evidence": 0, "EvidenceVersion": 0, "Signature": 0,
                                                          "SyncReceipt": 1, "AuditEntry": 0}
