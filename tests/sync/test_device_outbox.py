"""The device's outbox: each evidence change is queued in the same local transaction, as the centre expects it."""
import pytest
from sqlmodel import Session, select

from support.factories import TODAY
from sync.device import outbox
from tracker.audit import Actor
from tracker.errors import Refusal
from tracker.models import Evidence, EvidenceVersion, OutboxItem, User
from tracker.services import evidence as service


def on_device(tablet, field):
    """Return a session on the device's database and the assessor acting there."""
    session = Session(tablet.engine, expire_on_commit=False)
    return session, Actor(session.get(User, field.assessor.id), today=TODAY)


def observation(field, factory, **overrides):
    """Return observation input for the field candidate."""
    data = factory.evidence_data(field.candidate, "observation", **overrides)
    return data


def queued(tablet) -> list[OutboxItem]:
    """Return the device's queue in seq order."""
    with Session(tablet.engine) as s:
        return list(s.exec(select(OutboxItem).order_by(OutboxItem.seq)))


def test_capture_queues_one_item_in_the_same_transaction(tablet, field, factory, session):
    s, me = on_device(tablet, field)
    data = observation(field, factory, signatures=[{"kind": "countersignature"}, {"kind": "observer"}])
    item = service.capture(s, me, data)
    assert queued(tablet) == []  # nothing visible before the change commits
    s.commit()
    [capture] = queued(tablet)
    assert (capture.kind, capture.seq, capture.state, capture.evidence_id) == ("evidence.capture", 1, "pending",
                                                                              item.id)
    assert [sig["kind"] for sig in capture.payload["signatures"]] == ["countersignature", "observer"]
    # The centre applies the payload as it stands, and stores the same content hash as the device.
    report = tablet.client().sync()
    assert report.ok and report.pushed == 1
    local = s.exec(select(EvidenceVersion).where(EvidenceVersion.evidence_id == item.id)).one()
    centre = session.exec(select(EvidenceVersion).where(EvidenceVersion.evidence_id == item.id)).one()
    assert centre.content_hash == local.content_hash
    assert len(centre.signatures) == 2


def test_a_refused_change_queues_nothing(tablet, field, factory):
    s, me = on_device(tablet, field)
    with pytest.raises(Refusal):
        service.capture(s, me, observation(field, factory, criteria=[{"code": "9.9", "note": ""}]))
    s.rollback()
    service.capture(s, me, observation(field, factory))
    s.rollback()  # captured, then abandoned: the item goes with it
    assert queued(tablet) == []


def test_sign_submit_and_revise_each_queue_their_kind_in_order(tablet, field, factory, session):
    s, me = on_device(tablet, field)
    draft = service.capture(s, me, observation(field, factory, submit=False))
    s.commit()
    service.sign(s, me, draft.id, {"kind": "observer"})
    s.commit()
    service.submit(s, me, draft.id)
    s.commit()
    new = {k: v for k, v in observation(field, factory, title="Observed again").items()
           if k not in ("candidate_id", "unit", "method", "submit", "signatures")}
    service.revise(s, me, draft.id, new, base_version=1, signatures=[service.SignatureIn(kind="observer")])
    s.commit()
    items = queued(tablet)
    assert [(i.seq, i.kind) for i in items] == [(1, "evidence.capture"), (2, "evidence.sign"),
                                                (3, "evidence.submit"), (4, "evidence.revise")]
    assert items[3].payload["signatures"] == [{"kind": "observer", "signer_name": field.assessor.name}]
    report = tablet.client().sync()
    assert report.ok and report.pushed == 4
    on_centre = session.get(Evidence, draft.id, populate_existing=True)
    assert (on_centre.status, on_centre.current_version) == ("submitted", 2)


def test_editing_a_draft_never_sent_folds_into_its_capture(tablet, field, factory):
    s, me = on_device(tablet, field)
    draft = service.capture(s, me, observation(field, factory, submit=False))
    s.commit()
    content = {k: v for k, v in observation(field, factory, title="Better title").items()
               if k not in ("candidate_id", "unit", "method", "submit", "signatures")}
    service.update_draft(s, me, draft.id, content)
    s.commit()
    [capture] = queued(tablet)
    assert capture.payload["title"] == "Better title"


def test_editing_a_draft_already_sent_is_refused_with_advice(tablet, field, factory):
    s, me = on_device(tablet, field)
    draft = service.capture(s, me, observation(field, factory, submit=False))
    s.commit()
    assert tablet.client().sync().ok
    content = {k: v for k, v in observation(field, factory, title="Too late").items()
               if k not in ("candidate_id", "unit", "method", "submit", "signatures")}
    service.update_draft(s, me, draft.id, content)
    with pytest.raises(Refusal) as refused:
        s.commit()
    assert refused.value.code == "already_sent"
    s.rollback()
    assert s.get(EvidenceVersion, s.exec(select(EvidenceVersion.id).where(
        EvidenceVersion.evidence_id == draft.id)).one(), populate_existing=True).title != "Too late"


def test_the_queue_status_counts_what_is_not_yet_accepted(tablet, field, factory):
    s, me = on_device(tablet, field)
    for _ in range(3):
        service.capture(s, me, observation(field, factory))
        s.commit()
    assert outbox.status(s)["pending"] == 3
    tablet.client().sync()
    assert outbox.status(s)["pending"] == 0
