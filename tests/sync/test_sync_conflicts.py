"""Conflicts a person resolves (G4, G13), what the centre still holds (G21), and content it cannot store (G25)."""
import uuid
from datetime import datetime, timedelta

import pytest
from sqlmodel import select

from support.factories import NOW, TODAY
from support.web import form_token
from sync import acknowledged_digest
from sync.centre import receipts
from sync_support import capture, content, count, evidence_id, item, push, register, revise
from tracker.errors import InvalidInput
from tracker.models import AuditEntry, Evidence, EvidenceVersion, Role, SyncConflict, SyncReceipt


def _hash(session, evidence, number: int) -> str:
    """Return the content hash of one version of stored evidence."""
    return session.exec(select(EvidenceVersion.content_hash).where(EvidenceVersion.evidence_id == evidence,
                                                                   EvidenceVersion.number == number)).one()


def _clash(session, factory, field):
    """Evidence revised at version 1 twice: the second change runs into the first and is a recorded conflict."""
    first = capture(factory, field.candidate, 1)
    push(session, field.device, field.assessor, [first])
    base = _hash(session, evidence_id(first), 1)
    ours = revise(2, evidence_id(first), 1, content(factory, field.candidate, narrative="From the first tablet."),
                  base_hash=base)
    theirs = revise(3, evidence_id(first), 1, content(factory, field.candidate, narrative="From the second."),
                    base_hash=base)
    answers = push(session, field.device, field.assessor, [ours, theirs])
    return first, theirs, answers


def test_a_stale_base_hash_is_a_conflict_recorded_once(field, session, factory):
    """G13: a revision naming a replaced version by hash is not applied; one SyncConflict however often sent."""
    first, theirs, answers = _clash(session, factory, field)
    assert [(a.verdict, a.code) for a in answers] == [("applied", None), ("conflict", "out_of_date")]
    for _ in range(3):
        assert push(session, field.device, field.assessor, [theirs])[0].verdict in ("conflict", "duplicate")
    conflict = session.exec(select(SyncConflict)).one()
    assert (conflict.evidence_id, conflict.centre_version) == (evidence_id(first), 2)
    assert conflict.base_hash == _hash(session, evidence_id(first), 1)
    assert conflict.proposed["content"]["narrative"] == "From the second."
    narratives = [v.narrative for v in session.get(Evidence, evidence_id(first)).versions]
    assert narratives == [first["payload"]["narrative"], "From the first tablet."]  # nothing overwritten


def test_a_base_named_by_hash_wins_over_a_matching_number(field, session, factory):
    """A revision whose number matches the current version but whose hash does not is still out of date."""
    first = capture(factory, field.candidate, 1)
    push(session, field.device, field.assessor, [first])
    forged = revise(2, evidence_id(first), 1, content(factory, field.candidate, narrative="Edited."),
                    base_hash="a" * 64)
    answer = push(session, field.device, field.assessor, [forged])[0]
    assert answer.verdict in ("held", "conflict")  # a version the centre never had is never a base
    assert count(session, EvidenceVersion) == 1


@pytest.mark.parametrize("choice", ["device", "centre", "merged"])
def test_a_person_settles_a_conflict_and_it_is_audited(field, session, factory, choice):
    """conflict.resolve closes the conflict with the person's choice, once, with an audit entry."""
    _first, theirs, _ = _clash(session, factory, field)
    settle = item(4, "conflict.resolve", {"item_id": theirs["item_id"], "choice": choice})
    assert push(session, field.device, field.assessor, [settle])[0].verdict == "applied"
    assert push(session, field.device, field.assessor, [settle])[0].verdict == "duplicate"
    conflict = session.exec(select(SyncConflict)).one()
    assert (conflict.resolution, conflict.resolved_by_id) == (choice, field.assessor.id)
    assert conflict.resolved_at is not None
    audited = session.exec(select(AuditEntry).where(AuditEntry.action == "sync.conflict_resolved")).all()
    assert len(audited) == 1 and audited[0].details["choice"] == choice


@pytest.mark.parametrize("forged", ["someone else's", "unknown", "bad choice"])
def test_a_forged_resolution_is_refused_and_changes_nothing(field, session, factory, forged):
    """Another person's conflict, an unknown one or a choice not offered is refused; the conflict stays open."""
    _first, theirs, _ = _clash(session, factory, field)
    other = factory.assessor(name="Other Assessor")
    device, person, target, choice = field.device, field.assessor, theirs["item_id"], "device"
    if forged == "someone else's":
        factory.candidate(assessors=(other,))
        device, person = register(session, other), other
    elif forged == "unknown":
        target = str(uuid.uuid4())
    else:
        choice = "whichever"
    answer = push(session, device, person, [item(9, "conflict.resolve", {"item_id": target, "choice": choice})])[0]
    assert answer.verdict == "refused"
    assert session.exec(select(SyncConflict)).one().resolved_at is None


def _signed_in(app, person):
    """A fresh browser with one person signed in through the real form."""
    browser = app.test_client()
    token = form_token(browser.get("/auth/login").get_data(as_text=True))
    assert browser.post("/auth/login", data={"email": person.email, "password": "correct horse battery",
                                             "csrf_token": token}).status_code == 302
    return browser


def test_the_centre_lists_open_conflicts_to_the_assessor_and_the_administrator(field, session, factory, app):
    """The list and the detail page show both versions; another assessor sees none of them."""
    _first, theirs, _ = _clash(session, factory, field)
    admin, other = factory.user(Role.ADMINISTRATOR, name="Ada Admin"), factory.assessor(name="Other Assessor")
    session.commit()
    for person, sees in ((field.assessor, True), (admin, True), (other, False)):
        client = _signed_in(app, person)
        page = client.get("/conflicts/").get_data(as_text=True)
        assert ("From the second." in page) is sees
        detail = client.get(f"/conflicts/{theirs['item_id']}")
        assert detail.status_code == (200 if sees else 404)
        if sees:
            text = detail.get_data(as_text=True)
            assert "From the first tablet." in text and "From the second." in text and "differs" in text
    assert client.get("/conflicts/not-an-id").status_code == 404


def test_home_says_how_many_conflicts_wait(field, session, factory, app):
    """The assessor's home page points to the open conflict; an IQA's says nothing of it."""
    _clash(session, factory, field)
    iqa = factory.user(Role.IQA, name="Ida Iqa")
    session.commit()
    home = _signed_in(app, field.assessor).get("/").get_data(as_text=True)
    assert "1 change from field devices ran into a newer version" in home
    assert "Sync conflicts" not in _signed_in(app, iqa).get("/").get_data(as_text=True)


def test_a_settled_conflict_leaves_the_list(field, session, factory, client, sign_in):
    """Once the assessor has decided, the conflict is no longer open."""
    _first, theirs, _ = _clash(session, factory, field)
    push(session, field.device, field.assessor, [item(4, "conflict.resolve", {"item_id": theirs["item_id"],
                                                                               "choice": "centre"})])
    session.commit()
    sign_in(field.assessor)
    assert "From the second." not in client.get("/conflicts/").get_data(as_text=True)


def test_the_acknowledged_digest_is_the_device_s_receipts(field, session, factory):
    """G21: the count and digest name exactly the receipts kept for this device, in any order."""
    items = [capture(factory, field.candidate, s) for s in (1, 2, 3)]
    push(session, field.device, field.assessor, items)
    other = factory.assessor(name="Other Assessor")
    push(session, register(session, other), other, [capture(factory, factory.candidate(assessors=(other,)), 1)])
    held = receipts.acknowledged(session, field.device)
    ids = [i["item_id"] for i in items]
    assert held == acknowledged_digest(ids) == acknowledged_digest(list(reversed(ids)))
    assert held["count"] == 3


def test_the_centre_names_what_it_no_longer_holds(field, session, factory):
    """Of the ids a device holds answers for, those without a receipt here (or another device's) come back."""
    items = [capture(factory, field.candidate, s) for s in (1, 2)]
    push(session, field.device, field.assessor, items)
    session.delete(session.get(SyncReceipt, uuid.UUID(items[1]["item_id"])))  # as a restore from backup would
    session.flush()
    lost = str(uuid.uuid4())
    assert receipts.missing(session, field.device, [i["item_id"] for i in items] + [lost]) == sorted(
        [items[1]["item_id"], lost])
    other = factory.assessor(name="Other Assessor")
    assert receipts.missing(session, register(session, other), [items[0]["item_id"]]) == [items[0]["item_id"]]


@pytest.mark.parametrize("bad", [None, "abc", [1, "x"], {"ids": []}, ["not-a-uuid"]])
def test_a_malformed_receipt_check_is_refused(field, session, bad):
    """Anything but a list of UUIDs is a clear refusal."""
    with pytest.raises(InvalidInput):
        receipts.missing(session, field.device, bad)


def test_the_receipt_check_over_http(client, session, factory, field):
    """POST /api/v1/receipts answers the missing ids; without a device token it is 401."""
    from sync import PROTOCOL_VERSION, SCHEMA_VERSION
    from sync.centre.tokens import issue_token
    device, token = issue_token(session, field.assessor, uuid.uuid4(), "Tablet", PROTOCOL_VERSION, SCHEMA_VERSION,
                                timedelta(days=90), now=NOW)
    session.commit()
    headers = {"Authorization": f"Bearer {token}", "X-Tracker-Protocol": PROTOCOL_VERSION,
               "X-Tracker-Schema": SCHEMA_VERSION}
    lost = str(uuid.uuid4())
    answer = client.post("/api/v1/receipts", json={"item_ids": [lost]}, headers=headers)
    assert answer.status_code == 200 and answer.get_json() == {"missing": [lost]}
    assert client.post("/api/v1/receipts", json={"item_ids": "x"}, headers=headers).status_code == 400
    unsigned = {k: v for k, v in headers.items() if k != "Authorization"}
    assert client.post("/api/v1/receipts", json={"item_ids": []}, headers=unsigned).status_code == 401


@pytest.mark.parametrize("text", ["Nul\x00here", "Lone \ud800 surrogate"])
def test_text_no_database_can_store_is_refused_and_the_rest_applied(field, session, factory, text):
    """G25: on every database the same code, every time it is sent; the items behind it are applied."""
    poison = capture(factory, field.candidate, 1, narrative=text)
    after = [capture(factory, field.candidate, s) for s in (2, 3)]
    answers = push(session, field.device, field.assessor, [poison, *after])
    assert [(a.verdict, a.code) for a in answers] == [("refused", "unstorable"), ("applied", None),
                                                      ("applied", None)]
    assert push(session, field.device, field.assessor, [poison])[0].code == "unstorable"
    assert count(session, Evidence) == 2


def test_a_future_activity_date_has_its_own_code(field, session, factory):
    """G24: a date after the centre's today is future_activity_date, never the prior-learning code."""
    answer = push(session, field.device, field.assessor,
                  [capture(factory, field.candidate, 1, activity_date=str(TODAY + timedelta(days=2)))])[0]
    assert (answer.verdict, answer.code) == ("refused", "future_activity_date")


def test_the_device_s_capture_time_is_kept_as_metadata(field, session, factory):
    """G24: the time the device says it captured an item is stored on the centre, but orders nothing."""
    captured = capture(factory, field.candidate, 1, captured_at="2001-01-01T09:00:00+00:00")
    assert push(session, field.device, field.assessor, [captured])[0].verdict == "applied"
    version = session.get(Evidence, evidence_id(captured)).versions[0]
    assert version.captured_at.replace(tzinfo=None) == datetime(2001, 1, 1, 9, 0)
    assert version.created_at.year == NOW.year  # the centre's clock stamps the record
