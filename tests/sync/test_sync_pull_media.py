"""The framework-free parts of pull, media and deletion, called directly (the HTTP tests cover the wire)."""
import hashlib
import io
import uuid

import pytest

from sync.centre import media, pull
from sync_support import capture, evidence_id, push
from tracker.audit import Actor
from tracker.errors import NotPermitted, Refusal
from tracker.models import Blob, Evidence, Tombstone, Upload
from tracker.services import deletions, evidence
from tracker.storage import LocalStorage


def test_cursor_round_trips_and_refuses_what_it_did_not_make(field):
    """A cursor reads back as written; a different version, order or person is resync_required."""
    user = field.assessor.id
    cursor = pull.Cursor(user, 3, 9, None, "abc")
    assert pull.parse_cursor(str(cursor), user, 9) == cursor
    for bad in ("9" + str(cursor)[1:], f"1.{user.hex}.9.3..abc", str(pull.Cursor(uuid.uuid4(), 3, 9,
                                                                                                None, "abc"))):
        with pytest.raises(pull.ResyncRequired):
            pull.parse_cursor(bad, user, 9)
    with pytest.raises(pull.ResyncRequired):
        pull.parse_cursor(str(cursor), user, 8)  # ahead of the server
    assert pull.parse_cursor(None, user, 0) is None
    assert pull.parse_cursor(f"1.{user.hex}.3.9..abc", user, 9) == pull.Cursor(user, 3, 9, None, "abc")  # older devices


def test_cursor_from_before_a_restore_is_refused(field, session, factory):
    """A cursor whose mark is not the centre's audit hash at its end was made by a centre since restored."""
    head = pull.head_seq(session)
    good = pull.Cursor(field.assessor.id, None, head, None, pull.packs_fingerprint(session),
                       pull.mark_at(session, head))
    assert pull.parse_cursor(str(good), field.assessor.id, head, session) == good
    forged = pull.Cursor(field.assessor.id, None, head, None, good.packs, "0" * len(good.mark))
    with pytest.raises(pull.ResyncRequired, match="restored"):
        pull.parse_cursor(str(forged), field.assessor.id, head, session)


def test_pull_sends_every_in_scope_candidate_once_across_pages(field, session, factory):
    """Paging by candidate: every candidate once, in whole snapshots."""
    others = [factory.candidate(assessors=(field.assessor,)) for _ in range(2)]
    seen, after = [], None
    while True:
        page = pull.pull(session, field.assessor, after, 1)
        seen += [r["id"] for r in page.tables.get("candidate", [])]
        after = page.cursor
        if not page.more:
            break
    assert sorted(seen) == sorted(str(c.id) for c in [field.candidate, *others])


def test_row_dict_never_carries_a_password_hash(field):
    """User rows go out without their password hash."""
    row = pull.row_dict(field.assessor)
    assert "password_hash" not in row and row["id"] == str(field.assessor.id)


def test_lost_spool_file_restarts_the_upload(field, session, tmp_path):
    """If the spool file is lost (a disk cleaned), the centre asks for the file from its start again."""
    storage = LocalStorage(tmp_path / "media")
    data = b"%PDF-1.7 " + b"x" * 1000
    digest = hashlib.sha256(data).hexdigest()
    actor = Actor(field.assessor, device_id=field.device.id)
    state, done = media.receive_part(session, storage, actor, digest, len(data), 0, io.BytesIO(data[:500]), 500)
    assert (state.received, done) == (500, False)
    media.spool_path(storage, digest, field.device.id).unlink()
    with pytest.raises(media.MediaRefused) as gap:
        media.receive_part(session, storage, actor, digest, len(data), 500, io.BytesIO(data[500:]), None)
    assert gap.value.code == "upload_gap" and gap.value.extra == {"received": 0}
    state, done = media.receive_part(session, storage, actor, digest, len(data), 0, io.BytesIO(data), None)
    assert done and state.complete and session.get(Blob, digest).media_type == "application/pdf"
    assert session.get(Upload, (field.device.id, digest)) is None and not media.spool_path(storage, digest, field.device.id).exists()


def test_abandoned_uploads_are_discarded_and_recent_ones_kept(field, session, tmp_path):
    """An upload no part has reached for a fortnight goes, row, parts and all, with an audit entry; one sent to
    today stays; the lost device, if it returns, starts its file from the beginning."""
    from datetime import timedelta

    from sqlmodel import select

    from tracker.models import AuditEntry, utcnow

    storage = LocalStorage(tmp_path / "media")
    actor = Actor(field.assessor, device_id=field.device.id)
    halves = {}
    for text in (b"%PDF-1.7 lost tablet ", b"%PDF-1.7 still sending "):
        data = text + b"x" * 1000
        digest = hashlib.sha256(data).hexdigest()
        media.receive_part(session, storage, actor, digest, len(data), 0, io.BytesIO(data[:600]), 600)
        halves[text] = digest
    lost, sending = halves.values()
    session.get(Upload, (field.device.id, lost)).updated_at = utcnow() - timedelta(days=20)
    session.commit()
    gone = media.discard_abandoned(session, storage, utcnow() - timedelta(days=14))
    session.commit()
    assert [u.sha256 for u in gone] == [lost]
    assert session.get(Upload, (field.device.id, lost)) is None and not media.spool_path(storage, lost, field.device.id).exists()
    assert session.get(Upload, (field.device.id, sending)).received == 600 and media.spool_path(storage, sending, field.device.id).exists()
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "upload.discarded")).one()
    assert entry.entity_id == lost and entry.details["received"] == 600
    assert media.state(session, storage, lost, field.assessor, field.device.id).received == 0


def test_only_an_administrator_deletes_and_only_a_draft(field, session, factory):
    """Deleting is for mistaken drafts, by the administrator, with a reason; submitted evidence stays."""
    draft = capture(factory, field.candidate, 1, submit=False)
    submitted = capture(factory, field.candidate, 2)
    push(session, field.device, field.assessor, [draft, submitted])
    with pytest.raises(NotPermitted):
        deletions.delete_draft(session, factory.actor(field.assessor), evidence_id(draft), "mine")
    with pytest.raises(NotPermitted):
        deletions.delete_draft(session, factory.as_admin, evidence_id(submitted), "wrong")
    with pytest.raises(Refusal):
        deletions.delete_draft(session, factory.as_admin, evidence_id(draft), "  ")
    stone = deletions.delete_draft(session, factory.as_admin, evidence_id(draft), "Wrong candidate")
    assert stone.candidate_id == field.candidate.id and session.get(Tombstone, evidence_id(draft))
    assert session.get(Evidence, evidence_id(draft)) is None
    assert evidence.get(session, evidence_id(submitted))


def test_pull_statement_count_does_not_grow_with_the_caseload(field, session, factory, engine):
    """A page is read in a fixed number of queries, however many candidates and pieces of evidence it holds."""
    from sqlalchemy import event

    def statements() -> int:
        seen = []
        listener = lambda *args: seen.append(args[2])  # noqa: E731
        event.listen(engine, "before_cursor_execute", listener)
        try:
            pull.pull(session, field.assessor, None, 50)
        finally:
            event.remove(engine, "before_cursor_execute", listener)
        return len(seen)

    for method in ("observation", "work_product"):
        factory.capture(field.assessor, field.candidate, method)
    session.commit()
    few = statements()
    for _ in range(4):
        candidate = factory.candidate(assessors=(field.assessor,))
        for method in ("observation", "work_product"):
            factory.capture(field.assessor, candidate, method)
    session.commit()
    assert statements() == few
