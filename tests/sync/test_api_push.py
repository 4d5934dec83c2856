"""Pushing over real HTTP: every item once, replays "duplicate", one forbidden item never blocks the rest."""
import hashlib
import uuid

import pytest
from sqlmodel import select

from api_support import verdicts
from sync_support import capture, content, count, evidence_id, revise, snapshot
from tracker.models import AuditEntry, Evidence, EvidenceVersion, SyncReceipt, Tombstone, new_id
from tracker.services import deletions


@pytest.fixture
def signed_in(device, session, factory):
    """An assessor with a candidate, signed in on a device over HTTP."""
    assessor = factory.assessor(name="Ann Assessor")
    candidate = factory.candidate(assessors=(assessor,))
    session.commit()
    assert device.enrol(assessor).status_code == 201
    device.assessor, device.candidate = assessor, candidate
    return device


def test_same_batch_over_http_seven_times_is_applied_once(signed_in, session, factory):
    """Test 1 over HTTP: one row per record, every replay "duplicate", no extra audit rows."""
    observed = capture(factory, signed_in.candidate, 1, signatures=[{"kind": "observer"}])
    batch = [observed, capture(factory, signed_in.candidate, 2, "work_product"),
             revise(3, evidence_id(observed), 1, content(factory, signed_in.candidate, narrative="Mrs B chose."))]
    session.commit()
    before = snapshot(session)
    first = signed_in.push(batch)
    assert verdicts(first) == ["applied"] * 3, first.text
    after = snapshot(session)
    assert {k: after[k] - before[k] for k in after} == {"Evidence": 2, "EvidenceVersion": 3, "Signature": 1,
                                                        "SyncReceipt": 3, "AuditEntry": 4}
    for _ in range(6):
        again = signed_in.push(batch)
        assert verdicts(again) == ["duplicate"] * 3
        assert [v["result"] for v in again.json()["verdicts"]] == [v["result"] for v in first.json()["verdicts"]]
    assert snapshot(session) == after


def test_a_forbidden_item_is_refused_and_the_rest_applied(signed_in, session, factory):
    """Test 10: an item for another assessor's candidate is refused; the items around it are applied."""
    other = factory.candidate(assessors=(factory.assessor(),))
    session.commit()
    answer = signed_in.push([capture(factory, signed_in.candidate, 1), capture(factory, other, 2),
                             capture(factory, signed_in.candidate, 3)])
    assert verdicts(answer) == ["applied", "refused", "applied"]
    refused = answer.json()["verdicts"][1]
    assert refused["code"] and refused["message"]
    assert count(session, Evidence, Evidence.candidate_id == other.id) == 0
    assert count(session, Evidence, Evidence.candidate_id == signed_in.candidate.id) == 2


def test_attachment_not_yet_uploaded_is_held_as_media_missing(signed_in, session, factory):
    """G6: an item whose declared file has not arrived is held (not parked), then applied once it has."""
    data = b"%PDF-1.7 a care plan written with Mrs B"
    sha = hashlib.sha256(data).hexdigest()
    captured = capture(factory, signed_in.candidate, 1, "work_product",
                       attachments=[{"sha256": sha, "filename": "care plan.pdf"}])
    session.commit()
    answer = signed_in.push([captured])
    assert verdicts(answer) == ["held"]
    verdict = answer.json()["verdicts"][0]
    assert verdict["code"] == "media_missing" and verdict["result"] == {"missing": [sha]}
    assert count(session, Evidence) == 0 and count(session, SyncReceipt) == 0
    upload = signed_in.put(f"/api/v1/uploads/{sha}", data, params={"size": len(data), "offset": 0})
    assert upload.status_code == 201, upload.text
    assert verdicts(signed_in.push([captured])) == ["applied"]
    assert count(session, Evidence) == 1


def test_deleted_evidence_is_not_recreated_by_a_late_retry(signed_in, session, factory):
    """Test 12 (G15): evidence deleted at the centre stays deleted, whether the device repeats the item or
    queues it again under a new item id."""
    draft = capture(factory, signed_in.candidate, 1, submit=False)
    assert verdicts(signed_in.push([draft])) == ["applied"]
    session.expire_all()
    deletions.delete_draft(session, factory.as_admin, evidence_id(draft), "Recorded against the wrong candidate")
    session.commit()
    assert session.get(Tombstone, evidence_id(draft)).reason == "Recorded against the wrong candidate"
    assert verdicts(signed_in.push([draft])) == ["duplicate"]  # the lost acknowledgement's retry
    requeued = dict(draft, item_id=str(new_id()), seq=2)
    answer = signed_in.push([requeued])
    assert verdicts(answer) == ["refused"] and answer.json()["verdicts"][0]["code"] == "deleted"
    assert verdicts(signed_in.push([requeued])) == ["refused"]  # and the same answer again
    edit = revise(3, evidence_id(draft), 1, content(factory, signed_in.candidate))
    assert signed_in.push([edit]).json()["verdicts"][0]["code"] == "deleted"
    session.expire_all()
    assert session.get(Evidence, evidence_id(draft)) is None
    assert count(session, EvidenceVersion, EvidenceVersion.evidence_id == evidence_id(draft)) == 0


@pytest.mark.parametrize("body", [None, {}, {"items": "x"}, {"items": {}}, [1, 2], "text"])
def test_malformed_push_is_a_clear_400(signed_in, session, body):
    """A push that is not {"items": [...]}: a JSON 400, nothing written."""
    before = count(session, AuditEntry)
    answer = signed_in.post("/api/v1/push", body)
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_input"
    assert count(session, AuditEntry) == before


@pytest.mark.parametrize("junk", [None, 1, "x", [], {"item_id": "nope", "seq": 1, "kind": "evidence.capture"},
                                  {"item_id": str(uuid.uuid4()), "seq": "1", "kind": "evidence.capture"},
                                  {"item_id": str(uuid.uuid4()), "seq": 1, "kind": "evidence.delete",
                                   "payload": {}},
                                  {"item_id": str(uuid.uuid4()), "seq": 1, "kind": "evidence.capture",
                                   "payload": {"id": "forged"}}])
def test_malformed_items_are_refused_one_by_one(signed_in, session, factory, junk):
    """Wrong types, unknown kinds, forged ids: each such item refused with a code, never a 500."""
    answer = signed_in.push([junk])
    assert answer.status_code == 200
    verdict = answer.json()["verdicts"][0]
    assert verdict["verdict"] == "refused" and verdict["code"] and verdict["message"]


def test_batch_over_the_limit_is_413(signed_in):
    """More items than the centre's limit: 413 batch_too_large, nothing applied."""
    from tracker.web.api import BATCH_ITEMS

    answer = signed_in.push([{}] * (BATCH_ITEMS + 1))
    assert answer.status_code == 413 and answer.json()["error"] == "batch_too_large"


def test_old_version_payload_is_accepted_with_defaults(signed_in, session, factory):
    """Test 11: a payload without fields added since (an older device) is applied with their defaults."""
    captured = capture(factory, signed_in.candidate, 1)
    for newer in ("setting_detail", "simulated", "seen_in_place", "captured_at"):
        captured["payload"].pop(newer, None)
    captured["future_envelope_field"] = "ignored"
    session.commit()
    assert verdicts(signed_in.push([captured])) == ["applied"]
    version = session.exec(select(EvidenceVersion).where(EvidenceVersion.evidence_id == evidence_id(captured))).one()
    assert version.simulated is False and version.setting_detail is None


def test_one_device_cannot_push_with_anothers_receipts(signed_in, session, factory, centre):
    """An item id already used by another person's device is a conflict, not a replay of their answer."""
    from api_support import Device

    captured = capture(factory, signed_in.candidate, 1)
    assert verdicts(signed_in.push([captured])) == ["applied"]
    other_assessor = factory.assessor()
    factory.candidate(assessors=(other_assessor,))
    session.commit()
    other = Device(centre)
    other.enrol(other_assessor)
    answer = other.push([captured])
    assert verdicts(answer) == ["conflict"] and answer.json()["verdicts"][0]["code"] == "item_id_in_use"
