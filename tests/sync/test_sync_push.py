"""Pushing from a device: every item once, in order, each with its own verdict (sync-guarantees tests 1, 3, 4, 8)."""
import uuid

import pytest
from sqlmodel import Session, col, select

from sync_support import capture, content, count, evidence_id, item, item_id, push, register, revise, snapshot, verdicts
from tracker.models import AuditEntry, Device, Evidence, EvidenceVersion, Signature, SyncReceipt, User, new_id
from tracker.services import evidence


def _batch(factory, field) -> list[dict]:
    """A day's work on the device: captures with signatures, a revision, a countersignature and a submission."""
    observed = capture(factory, field.candidate, 1, signatures=[{"kind": "observer"}])
    draft = capture(factory, field.candidate, 5, "professional_discussion", submit=False)
    return [
        observed,
        capture(factory, field.candidate, 2, "work_product"),
        revise(3, evidence_id(observed), 1, content(factory, field.candidate, narrative="Added what Mrs B chose.")),
        item(4, "evidence.sign", {"evidence_id": evidence_id(observed), "version": 2,
                                  "signature": {"kind": "countersignature"}}),
        draft,
        item(6, "evidence.submit", {"evidence_id": evidence_id(draft), "version": 1}),
    ]


def test_same_batch_pushed_seven_times_is_applied_once(field, session, factory):
    """Test 1: one row per record, every replay "duplicate" with the first result, no extra audit entries."""
    batch = _batch(factory, field)
    before = snapshot(session)
    first = push(session, field.device, field.assessor, batch)
    assert verdicts(first) == ["applied"] * 6, [a.message for a in first]
    after = snapshot(session)
    assert {k: after[k] - before[k] for k in after} == {
        "Evidence": 3, "EvidenceVersion": 4, "Signature": 2, "SyncReceipt": 6,
        "AuditEntry": 7}  # 3 captured, 1 revised, 2 signed, 1 submitted
    for _ in range(6):
        again = push(session, field.device, field.assessor, batch)
        assert verdicts(again) == ["duplicate"] * 6
        assert [a.result for a in again] == [a.result for a in first]
        assert snapshot(session) == after
    assert session.get(Evidence, evidence_id(batch[4])).status == "submitted"


def test_audit_entries_name_the_device(field, session, factory):
    """Every audit entry a push writes names the device and the assessor."""
    since = session.exec(select(AuditEntry.id).order_by(col(AuditEntry.id).desc())).first()
    push(session, field.device, field.assessor, _batch(factory, field))
    entries = session.exec(select(AuditEntry).where(AuditEntry.id > since)).all()
    assert sorted(e.action for e in entries) == sorted(
        ["evidence.captured"] * 3 + ["evidence.revised", "evidence.signed", "evidence.signed", "evidence.submitted"])
    assert {(e.device_id, e.actor_id) for e in entries} == {(field.device.id, field.assessor.id)}


def test_changed_item_is_a_conflict_and_the_next_ten_still_apply(field, session, factory):
    """Test 3: same item id, different content: "item_changed", server copy unchanged, the rest applied."""
    first = capture(factory, field.candidate, 1)
    assert verdicts(push(session, field.device, field.assessor, [first])) == ["applied"]
    changed = first | {"payload": first["payload"] | {"narrative": "Rewritten on the device afterwards."}}
    later = [capture(factory, field.candidate, seq) for seq in range(2, 12)]
    answers = push(session, field.device, field.assessor, [changed, *later])
    assert (answers[0].verdict, answers[0].code) == ("conflict", "item_changed")
    assert verdicts(answers[1:]) == ["applied"] * 10
    stored = session.get(Evidence, evidence_id(first))
    version = evidence.current_version(session, stored)
    assert (stored.current_version, version.narrative) == (1, first["payload"]["narrative"])
    assert session.get(SyncReceipt, item_id(first)).verdict == "applied"
    again = push(session, field.device, field.assessor, [changed])
    assert (again[0].verdict, again[0].code) == ("conflict", "item_changed")


def test_same_evidence_id_with_other_content_in_a_new_item_is_a_kept_conflict(field, session, factory):
    """A new item re-using an evidence id with other content is a conflict, kept once, and nothing overwritten."""
    first = capture(factory, field.candidate, 1)
    other = item(2, "evidence.capture", first["payload"] | {"title": "Another title"})
    answers = push(session, field.device, field.assessor, [first, other])
    assert [(a.verdict, a.code) for a in answers] == [("applied", None), ("conflict", "conflict")]
    assert "has not been overwritten" in answers[1].message
    before = snapshot(session)
    assert push(session, field.device, field.assessor, [other]) == [answers[1]]
    assert snapshot(session) == before
    assert evidence.current_version(session, session.get(Evidence, evidence_id(first))).title == \
        first["payload"]["title"]


def test_stale_revision_is_an_out_of_date_conflict(field, session, factory):
    """A revision based on a version the centre has moved past is a conflict; both versions' content is kept."""
    first = capture(factory, field.candidate, 1)
    ours = revise(2, evidence_id(first), 1, content(factory, field.candidate, narrative="Version two."))
    stale = revise(3, evidence_id(first), 1, content(factory, field.candidate, narrative="Also from version one."))
    answers = push(session, field.device, field.assessor, [first, ours, stale])
    assert [(a.verdict, a.code) for a in answers] == [("applied", None), ("applied", None),
                                                      ("conflict", "out_of_date")]
    stored = session.get(Evidence, evidence_id(first))
    assert [v.narrative for v in stored.versions] == [first["payload"]["narrative"], "Version two."]


def test_signature_on_a_version_the_centre_has_replaced_is_out_of_date(field, session, factory):
    """A countersignature names the version seen; a newer version on the centre makes it a conflict, unsigned."""
    first = capture(factory, field.candidate, 1)
    newer = revise(2, evidence_id(first), 1, content(factory, field.candidate, narrative="Version two."))
    sign = item(3, "evidence.sign", {"evidence_id": evidence_id(first), "version": 1,
                                     "signature": {"kind": "countersignature"}})
    answers = push(session, field.device, field.assessor, [first, newer, sign])
    assert (answers[2].verdict, answers[2].code) == ("conflict", "out_of_date")
    assert count(session, Signature) == 0


def test_lost_acknowledgement_gets_duplicate_and_the_original_result(field, session, factory, engine):
    """Test 4 (server half): committed but the answer never arrived: the retry is "duplicate", one row."""
    batch = [capture(factory, field.candidate, 1)]
    lost = push(session, field.device, field.assessor, batch)
    session.commit()
    with Session(engine, expire_on_commit=False) as retry:
        device, user = retry.get(Device, field.device.id), retry.get(User, field.assessor.id)
        answer = push(retry, device, user, batch)
        retry.commit()
        assert (answer[0].verdict, answer[0].result) == ("duplicate", lost[0].result)
        assert count(retry, Evidence, Evidence.id == evidence_id(batch[0])) == 1
        assert count(retry, SyncReceipt) == 1


def test_push_rolled_back_before_commit_is_applied_on_retry(field, session, factory):
    """A push the centre never committed leaves no receipt, so the retry is applied."""
    session.commit()
    batch = [capture(factory, field.candidate, 1)]
    push(session, field.device, field.assessor, batch)
    session.rollback()
    assert count(session, SyncReceipt) == 0
    assert verdicts(push(session, field.device, field.assessor, batch)) == ["applied"]
    assert count(session, Evidence, Evidence.id == evidence_id(batch[0])) == 1


# --- Order (G12, test 8) ----------------------------------------------------------------------------------


def _create_and_two_revisions(factory, field) -> list[dict]:
    first = capture(factory, field.candidate, 1, title="First")
    return [first,
            revise(2, evidence_id(first), 1, content(factory, field.candidate, title="Second")),
            revise(3, evidence_id(first), 2, content(factory, field.candidate, title="Third"))]


def _history(session, evidence_id_: uuid.UUID) -> list[tuple]:
    stored = session.get(Evidence, evidence_id_)
    return [(stored.current_version, stored.status)] + [(v.number, v.title, v.replaces_id is not None)
                                                       for v in stored.versions]


def test_out_of_order_arrival_is_held_then_applied_as_in_order(field, session, factory):
    """Test 8: items 1, 2, 3 arrive as 3, then 1, then 2 (with 3 resent): held, then the in-order result."""
    one, two, three = _create_and_two_revisions(factory, field)
    held = push(session, field.device, field.assessor, [three])
    assert [(a.verdict, a.code) for a in held] == [("held", "dependency_missing")]
    assert "has not reached the centre yet" in held[0].message
    assert count(session, SyncReceipt) == 0
    assert verdicts(push(session, field.device, field.assessor, [one])) == ["applied"]
    assert verdicts(push(session, field.device, field.assessor, [two, three])) == ["applied", "applied"]
    other = register(session, field.assessor, "Second tablet")
    in_order = _create_and_two_revisions(factory, field)
    assert verdicts(push(session, other, field.assessor, in_order)) == ["applied"] * 3
    assert _history(session, evidence_id(one)) == _history(session, evidence_id(in_order[0])) == [
        (3, "submitted"), (1, "First", False), (2, "Second", True), (3, "Third", True)]


def test_a_batch_sent_out_of_order_is_applied_in_seq_order(field, session, factory):
    """Within one batch, items are applied by seq and answered in the order sent."""
    one, two, three = _create_and_two_revisions(factory, field)
    answers = push(session, field.device, field.assessor, [three, one, two])
    assert [(a.seq, a.verdict) for a in answers] == [(3, "applied"), (1, "applied"), (2, "applied")]
    assert answers[0].result["version"] == 3


def test_items_wait_only_for_what_they_depend_on(field, session, factory):
    """G12: a missing item 1 holds nothing unrelated; a revision of evidence not yet at the centre waits alone."""
    one, two, three = _create_and_two_revisions(factory, field)
    others = [capture(factory, field.candidate, s) for s in (5, 6)]
    answers = push(session, field.device, field.assessor, [two, *others])
    assert [(a.verdict, a.code) for a in answers] == [("held", "dependency_missing"), ("applied", None),
                                                      ("applied", None)]
    assert answers[0].result == {"evidence_id": str(evidence_id(one))}  # what it waits for
    assert count(session, Evidence) == 2 and count(session, SyncReceipt) == 2
    assert verdicts(push(session, field.device, field.assessor, [one, two, three])) == ["applied"] * 3


def test_a_seq_used_by_another_item_is_a_conflict(field, session, factory):
    """Two different items with one seq: the second is a conflict, not applied, not kept."""
    answers = push(session, field.device, field.assessor, [capture(factory, field.candidate, 1),
                                                           capture(factory, field.candidate, 1)])
    assert [(a.verdict, a.code) for a in answers] == [("applied", None), ("conflict", "seq_reused")]
    assert count(session, SyncReceipt) == 1


def test_same_item_twice_in_one_batch_is_applied_once(field, session, factory):
    """An item repeated inside one batch is applied once and the repeat answered "duplicate"."""
    once = capture(factory, field.candidate, 1)
    answers = push(session, field.device, field.assessor, [once, once])
    assert verdicts(answers) == ["applied", "duplicate"]
    assert count(session, EvidenceVersion) == 1


# --- Scope (G16) ----------------------------------------------------------------------------------------


def test_item_for_another_assessors_candidate_is_refused_and_the_rest_applied(field, session, factory):
    """One forbidden item is refused for itself only; the items around it are applied."""
    theirs = factory.candidate(assessors=(factory.assessor(),))
    batch = [capture(factory, field.candidate, 1), capture(factory, theirs, 2), capture(factory, field.candidate, 3),
             capture(factory, field.candidate, 4, candidate_id=new_id())]
    answers = push(session, field.device, field.assessor, batch)
    assert [(a.verdict, a.code) for a in answers] == [("applied", None), ("refused", "not_permitted"),
                                                      ("applied", None), ("refused", "not_found")]
    assert "candidates you are assigned to" in answers[1].message
    assert count(session, Evidence, Evidence.candidate_id == theirs.id) == 0
    assert count(session, SyncReceipt) == 4


def test_refused_item_replayed_gets_the_same_refusal_and_writes_nothing(field, session, factory):
    """A refusal is kept, so the device that lost the answer hears the same reason again."""
    batch = [capture(factory, field.candidate, 1, simulated=True)]
    first = push(session, field.device, field.assessor, batch)
    assert (first[0].verdict, first[0].code, first[0].result) == ("refused", "simulation_not_allowed",
                                                                  {"field": "setting"})
    before = snapshot(session)
    assert push(session, field.device, field.assessor, batch) == first
    assert snapshot(session) == before


def test_device_of_another_person_cannot_push(field, session, factory):
    """A push is refused outright when the device is not the acting person's."""
    from tracker.errors import NotPermitted

    with pytest.raises(NotPermitted):
        push(session, field.device, factory.assessor(), [capture(factory, field.candidate, 1)])
