"""New evidence pushed in a run is checked one item at a time and written together: stored exactly as when each is
applied on its own, with the same answers, in the device's order."""
import uuid

import pytest
from sqlmodel import select

import sync.centre.push
from sync_support import capture, count, evidence_id, item, push, verdicts
from tracker import audit
from tracker.models import (
    Attachment,
    AuditEntry,
    Evidence,
    EvidenceCriterion,
    EvidenceRangeItem,
    EvidenceVersion,
    Signature,
    SyncReceipt,
    new_id,
)
from tracker.services.evidence import CONTENT_FIELDS
from tracker.specpacks.loader import range_key
from tracker.storage import hold

GOOD_DAYS = range_key("Person-centred tools", "good days and bad days")  # a range item of 2.1


def _one_by_one(monkeypatch) -> None:
    """Apply every item on its own, as the centre did before runs were written together."""
    monkeypatch.setattr(sync.centre.push._Run, "takes", lambda self, index, item: False)


def _payloads(factory, field) -> list[dict]:  # noqa: ANN001
    """A day's captures of every shape: plain, draft, with range items, a photo and a drawn countersignature, a
    work product with a file, and witness testimony signed by the witness."""
    photo, drawn = factory.blob(b"\xff\xd8 photo", "image/jpeg"), factory.blob(b"\x89PNG drawn", "image/png")
    for blob in (photo, drawn, factory.blob()):  # the device sent each file first (the work product's too)
        hold(factory.session, blob.sha256, field.assessor.id)
    c = field.candidate
    return [
        factory.evidence_data(c, "observation"),
        factory.evidence_data(c, "observation", submit=False, title="Draft visit"),
        factory.evidence_data(c, "observation", range_items=[GOOD_DAYS],
                              criteria=[{"code": "2.1", "note": "Good days"}, {"code": "2.2", "note": "Her words"}]),
        factory.evidence_data(c, "observation", attachments=[{"sha256": photo.sha256, "filename": "plan.jpg"}],
                              signatures=[{"kind": "countersignature", "image_sha256": drawn.sha256},
                                          {"kind": "observer"}]),
        factory.evidence_data(c, "work_product"),
        factory.evidence_data(c, "witness_testimony"),
    ]


def _items(payloads: list[dict], first_seq: int) -> list[dict]:
    return [item(first_seq + n, "evidence.capture", p | {"id": new_id()}) for n, p in enumerate(payloads)]


def _stored(session, captured: dict) -> dict:  # noqa: ANN001
    """Everything stored for a pushed capture, less the ids and times that differ by nature."""
    ev = session.get(Evidence, evidence_id(captured))
    v = session.exec(select(EvidenceVersion).where(EvidenceVersion.evidence_id == ev.id)).one()
    rows = lambda model, *cols: sorted(tuple(getattr(r, c) for c in cols) for r in session.exec(  # noqa: E731
        select(model).where(model.version_id == v.id)))
    entries = session.exec(select(AuditEntry).where(AuditEntry.entity_id == str(ev.id)).order_by(AuditEntry.seq))
    receipt = session.get(SyncReceipt, uuid.UUID(captured["item_id"]))
    return {
        "evidence": (ev.candidate_id, ev.unit_id, ev.method, ev.status, ev.created_by_id, ev.device_id,
                     ev.current_version),
        "version": (v.number, v.replaces_id, v.author_id, v.content_hash, v.captured_at, v.submitted_at is None,
                    *(getattr(v, f) for f in CONTENT_FIELDS)),
        "criteria": rows(EvidenceCriterion, "criterion_id", "note"),
        "range": rows(EvidenceRangeItem, "range_item_id"),
        "files": rows(Attachment, "sha256", "filename", "position"),
        "signatures": rows(Signature, "kind", "signer_id", "signer_name", "statement", "content_hash",
                           "image_sha256", "device_id"),
        "audit": [(e.action, e.entity_type, e.actor_id, e.device_id, e.candidate_id,
                   {k: val for k, val in e.details.items() if k != "version"}) for e in entries],
        "receipt": (receipt.kind, receipt.verdict, receipt.code, receipt.message,
                    {k: val for k, val in receipt.result.items() if k != "evidence_id"}),
    }


def test_captures_written_together_are_stored_as_when_applied_one_by_one(field, session, factory, monkeypatch):
    """Every row, signature, file link, audit entry and receipt matches the one-at-a-time path's, and the audit
    chain stays whole."""
    payloads, runs = _payloads(factory, field), []
    real = sync.centre.push.evidence.write_captures
    monkeypatch.setattr(sync.centre.push.evidence, "write_captures", lambda s, a, c: runs.append(len(c)) or real(s, a, c))
    together = _items(payloads, 1)
    assert verdicts(push(session, field.device, field.assessor, together)) == ["applied"] * len(payloads)
    assert runs == [len(payloads)]  # one write for the whole run
    _one_by_one(monkeypatch)
    alone = _items(payloads, len(payloads) + 1)
    assert verdicts(push(session, field.device, field.assessor, alone)) == ["applied"] * len(payloads)
    for a, b in zip(together, alone, strict=True):
        assert _stored(session, a) == _stored(session, b)
    assert _stored(session, together[3])["signatures"][0][0] == "countersignature"
    assert audit.verify(session).intact


def test_audit_entries_follow_the_devices_order(field, session, factory):
    """A capture, its submission and the next capture get audit entries in seq order, with no gaps in the chain."""
    draft = capture(factory, field.candidate, 1, submit=False)
    batch = [draft, item(2, "evidence.submit", {"evidence_id": evidence_id(draft), "version": 1}),
             capture(factory, field.candidate, 3)]
    before = session.exec(select(AuditEntry.seq).order_by(AuditEntry.seq.desc())).first() or 0
    assert verdicts(push(session, field.device, field.assessor, batch)) == ["applied"] * 3
    entries = session.exec(select(AuditEntry).where(AuditEntry.seq > before).order_by(AuditEntry.seq)).all()
    assert [(e.action, e.entity_id) for e in entries] == [
        ("evidence.captured", str(evidence_id(draft))), ("evidence.submitted", str(evidence_id(draft))),
        ("evidence.captured", str(evidence_id(batch[2])))]
    assert [e.seq for e in entries] == list(range(before + 1, before + 4))
    assert audit.verify(session).intact


@pytest.mark.parametrize("alone", [False, True], ids=["together", "one-by-one"])
def test_a_refusal_inside_a_run_keeps_only_its_receipt(field, session, factory, monkeypatch, alone):
    """A capture the rules refuse is answered with the rule's words and kept as a receipt; those around it apply."""
    if alone:
        _one_by_one(monkeypatch)
    batch = [capture(factory, field.candidate, 1), capture(factory, field.candidate, 2, criteria=[{"code": "9.9"}]),
             capture(factory, field.candidate, 3, simulated=True)]
    answers = push(session, field.device, field.assessor, batch)
    assert [(a.verdict, a.code) for a in answers] == [
        ("applied", None), ("refused", "invalid_input"), ("refused", "simulation_not_allowed")]
    assert "Unit 002 has no criterion 9.9" in answers[1].message
    assert [count(session, Evidence, Evidence.id == evidence_id(i)) for i in batch] == [1, 0, 0]
    assert count(session, SyncReceipt) == 3


def test_the_same_evidence_twice_in_one_push(field, session, factory):
    """A second capture of the same evidence with the same content changes nothing; with other content it is a
    conflict and the first stays as it was."""
    first = capture(factory, field.candidate, 1)
    again = item(2, "evidence.capture", first["payload"])
    changed = item(3, "evidence.capture", first["payload"] | {"title": "Something else"})
    answers = push(session, field.device, field.assessor, [first, again, changed])
    assert [(a.verdict, a.code) for a in answers] == [("applied", None), ("applied", None), ("conflict", "conflict")]
    assert count(session, Evidence, Evidence.id == evidence_id(first)) == 1
    assert session.exec(select(EvidenceVersion.title).where(
        EvidenceVersion.evidence_id == evidence_id(first))).one() == first["payload"]["title"]


def test_a_repeated_push_of_a_run_is_answered_from_its_receipts(field, session, factory):
    """The same run sent again writes nothing and answers "duplicate" for each item."""
    batch = [capture(factory, field.candidate, n) for n in (1, 2, 3)]
    push(session, field.device, field.assessor, batch)
    evidence, entries = count(session, Evidence), count(session, AuditEntry)
    assert verdicts(push(session, field.device, field.assessor, batch)) == ["duplicate"] * 3
    assert (count(session, Evidence), count(session, AuditEntry)) == (evidence, entries)


def test_a_run_of_refused_captures_keeps_only_receipts(field, session, factory, caplog):
    """When the rules refuse every capture of a run, the run writes its receipts alone, without falling back."""
    before = (count(session, Evidence), count(session, AuditEntry))
    batch = [capture(factory, field.candidate, n, simulated=True) for n in (1, 2)]
    answers = push(session, field.device, field.assessor, batch)
    assert [(a.verdict, a.code) for a in answers] == [("refused", "simulation_not_allowed")] * 2
    assert (count(session, Evidence), count(session, AuditEntry)) == before
    assert count(session, SyncReceipt) == 2
    assert "could not be written together" not in caplog.text
