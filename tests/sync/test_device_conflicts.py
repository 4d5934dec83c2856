"""Conflicts on the device (G13): the centre's version arrives beside the device's; a person keeps, takes or merges."""
import pytest
from sqlmodel import Session, select

from support.factories import TODAY
from sync.centre import pull
from sync.device import conflicts, outbox
from test_device_client import capture, revise
from tracker.audit import Actor
from tracker.errors import NotFound, Refusal
from tracker.models import ConflictCopy, Evidence, EvidenceVersion, OutboxItem, SyncConflict, User
from tracker.services import evidence as service


def _changed_at_centre(session, field, factory, evidence_id, title: str) -> None:
    """Save a version at the centre, as the assessor's other device or a colleague would."""
    content = {k: v for k, v in factory.evidence_data(field.candidate, "observation", title=title).items()
               if k not in ("candidate_id", "unit", "method", "submit", "signatures")}
    service.revise(session, Actor(field.assessor, today=TODAY), evidence_id, content, base_version=1)
    session.commit()


def _sync(tablet, field, session):
    """Sync, then sync again with the centre's whole state as the pull's answer, as a served centre gives it."""
    first = tablet.client().sync()
    session.expire_all()
    tablet.centre.pages.append(pull.pull(session, session.get(User, field.assessor.id), None, 1000).as_dict())
    second = tablet.client().sync()
    return first, second


def _in_conflict(tablet, field, factory, session):
    """Evidence revised at the centre and on the device from the same version; the device's sync meets the other."""
    evidence_id = capture(tablet, field, factory, submit=False, title="First")
    assert tablet.client().sync().ok
    _changed_at_centre(session, field, factory, evidence_id, "At the centre")
    revise(tablet, field, factory, evidence_id, "On the tablet")
    report, _ = _sync(tablet, field, session)
    return evidence_id, report


def _titles(session, evidence_id) -> list[str]:
    return [v.title for v in session.exec(select(EvidenceVersion).where(EvidenceVersion.evidence_id == evidence_id)
                                          .order_by(EvidenceVersion.number))]


def test_a_conflict_is_reported_and_the_centre_s_version_arrives_beside_mine(tablet, field, factory, session):
    """The sync is not "done"; the device holds both versions; nothing is overwritten anywhere."""
    evidence_id, report = _in_conflict(tablet, field, factory, session)
    assert not report.ok and len(report.outstanding["conflict"]) == 1
    assert any("conflict" in line.lower() for line in report.lines())
    with Session(tablet.engine) as s:
        found = conflicts.conflict_for(s, evidence_id)
        centre, mine = conflicts.sides(s, found)
        assert (centre["title"], mine["title"]) == ("At the centre", "On the tablet")
        assert s.get(ConflictCopy, evidence_id) is not None
    session.expire_all()
    assert _titles(session, evidence_id) == ["First", "At the centre"]
    assert session.exec(select(SyncConflict)).one().resolved_at is None


def test_saving_again_before_deciding_is_still_a_conflict(tablet, field, factory, session):
    """A later change on the same evidence waits behind the open conflict and never reaches the centre alone."""
    evidence_id, _ = _in_conflict(tablet, field, factory, session)
    with Session(tablet.engine) as s:
        me = Actor(s.get(User, field.assessor.id), today=TODAY)
        content = service.content_of(s, service.current_version(s, s.get(Evidence, evidence_id)))
        service.revise(s, me, evidence_id, content.model_copy(update={"title": "Again"}),
                       base_version=s.get(Evidence, evidence_id).current_version)
        s.commit()
    report = tablet.client().sync()
    assert not report.ok
    session.expire_all()
    assert _titles(session, evidence_id) == ["First", "At the centre"]


@pytest.mark.parametrize(("choice", "expected"), [("device", ["First", "At the centre", "On the tablet"]),
                                                  ("centre", ["First", "At the centre"]),
                                                  ("merged", ["First", "At the centre", "Both, merged"])])
def test_the_assessor_settles_it_and_both_sides_agree(tablet, field, factory, session, choice, expected):
    """Keep mine, take the centre's, or merge: the centre ends with that history, the conflict closed once."""
    evidence_id, _ = _in_conflict(tablet, field, factory, session)
    with Session(tablet.engine) as s:
        me = Actor(s.get(User, field.assessor.id), today=TODAY)
        merge = None
        if choice == "merged":
            merge = service.content_of(s, service.current_version(s, s.get(Evidence, evidence_id))).model_copy(
                update={"title": "Both, merged"})
        conflicts.resolve(s, me, evidence_id, choice, merge)
        s.commit()
    _, report = _sync(tablet, field, session)
    assert report.ok, report.lines()
    session.expire_all()
    assert _titles(session, evidence_id) == expected
    settled = session.exec(select(SyncConflict)).one()
    assert settled.resolution == choice and settled.resolved_at is not None
    with Session(tablet.engine) as s:
        assert [v.title for v in s.exec(select(EvidenceVersion).where(EvidenceVersion.evidence_id == evidence_id)
                                        .order_by(EvidenceVersion.number))] == expected
        assert conflicts.open_conflicts(s) == []
        assert s.get(ConflictCopy, evidence_id) is None


def test_a_choice_not_offered_or_a_forged_id_changes_nothing(tablet, field, factory, session):
    """Refusals leave the conflict, the queue and both versions as they were."""
    evidence_id, _ = _in_conflict(tablet, field, factory, session)
    with Session(tablet.engine) as s:
        me = Actor(s.get(User, field.assessor.id), today=TODAY)
        before = [(i.seq, i.state) for i in s.exec(select(OutboxItem))]
        with pytest.raises(Refusal):
            conflicts.resolve(s, me, evidence_id, "whichever")
        with pytest.raises(NotFound):
            conflicts.resolve(s, me, "not-an-id", "device")
        s.rollback()
        assert [(i.seq, i.state) for i in s.exec(select(OutboxItem))] == before
        assert conflicts.conflict_for(s, evidence_id).item.state == outbox.CONFLICT


# --- The device's conflict page ---------------------------------------------------------------------------------

from support.web import form_token  # noqa: E402
from test_device_page import browser, field_app, text  # noqa: E402, F401 - fixtures shared with the Sync page


def test_the_sync_page_links_to_the_two_versions_side_by_side(browser, tablet, field, factory, session):
    """The Sync page names the conflict; its page shows both versions with the differing fields marked."""
    evidence_id, _ = _in_conflict(tablet, field, factory, session)
    listing = text(browser.get("/sync/"))
    assert f"/sync/conflicts/{evidence_id}" in listing
    page = text(browser.get(f"/sync/conflicts/{evidence_id}"))
    assert "At the centre" in page and "On the tablet" in page and "differs" in page
    assert "Keep mine" in page and "Take the centre's" in page and "Merge the two" in page


def test_a_merge_from_the_page_reaches_the_centre(browser, tablet, field, factory, session):
    """The merge form's words become the new version on top of the centre's, and the conflict closes."""
    evidence_id, _ = _in_conflict(tablet, field, factory, session)
    url = f"/sync/conflicts/{evidence_id}"
    answer = browser.post(url, data={"csrf_token": form_token(text(browser.get(url))), "choice": "merged",
                                     "title": "Merged on the page", "activity_date": TODAY.isoformat(),
                                     "narrative": "Both accounts, in the assessor's words."})
    assert answer.status_code == 303 and "Your merge is kept" in text(browser.get("/sync/"))
    assert _sync(tablet, field, session)[1].ok
    assert _titles(session, evidence_id) == ["First", "At the centre", "Merged on the page"]


@pytest.mark.parametrize("form", [{"choice": "whichever"}, {"choice": "merged", "title": ""}])
def test_a_bad_choice_or_an_empty_merge_is_refused_and_nothing_changes(browser, tablet, field, factory, session,
                                                                       form):
    """The page explains what is wrong; the conflict stays open with nothing queued."""
    evidence_id, _ = _in_conflict(tablet, field, factory, session)
    url = f"/sync/conflicts/{evidence_id}"
    with Session(tablet.engine) as s:
        before = [(i.seq, i.state) for i in s.exec(select(OutboxItem))]
    answer = browser.post(url, data={"csrf_token": form_token(text(browser.get(url)))} | form)
    assert answer.status_code == 303 and answer.headers["Location"].endswith(url)
    assert "Resolve a conflict" in text(browser.get(url))
    with Session(tablet.engine) as s:
        assert [(i.seq, i.state) for i in s.exec(select(OutboxItem))] == before


@pytest.mark.parametrize("path", ["/sync/conflicts/not-a-uuid", "/sync/conflicts/0190f2a8-0000-7000-8000-000000000000"])
def test_a_forged_conflict_is_not_found(browser, path):
    assert browser.get(path).status_code == 404
    token = form_token(text(browser.get("/sync/")))
    assert browser.post(path, data={"csrf_token": token, "choice": "device"}).status_code == 404


def test_the_conflict_page_needs_a_signed_in_person_and_a_csrf_token(field_app, browser):
    path = "/sync/conflicts/0190f2a8-0000-7000-8000-000000000000"
    signed_out = field_app.test_client()
    assert "/auth/login" in signed_out.get(path).headers["Location"]
    assert browser.post(path, data={"choice": "device"}).status_code == 400
