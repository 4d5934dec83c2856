"""Pages kept in memory between changes: opened again they are the same; after any change they show it at once."""
import pytest

from support.web import form_token
from sqlmodel import select

from tracker.models import CandidateAssignment
from tracker.readcache import ReadCache
from tracker.services import evidence as evidence_service
from tracker.services import people as people_service


@pytest.fixture
def scene(app, session, factory):
    """Ann assesses Cara, who has submitted an observation."""
    ann = factory.assessor(name="Ann Assessor")
    cara = factory.candidate(name="Cara Candidate", assessors=(ann,))
    item = factory.capture(ann, cara, "observation", title="Planning with Mrs B", submit=True)
    session.commit()
    return ann, cara, item


def test_evidence_page_shows_a_review_made_after_it_was_first_served(scene, client, sign_in, session, factory):
    """Served twice unchanged, then a review recorded elsewhere appears on the next request."""
    ann, _cara, item = scene
    sign_in(ann)
    first = client.get(f"/evidence/{item.id}").get_data(as_text=True)
    assert client.get(f"/evidence/{item.id}").get_data(as_text=True) == first
    assert "Assessor's decisions and feedback" not in first
    evidence_service.review(session, factory.actor(ann), item.id, "referred", "Say how Mrs B chose her goals.")
    session.commit()
    page = client.get(f"/evidence/{item.id}").get_data(as_text=True)
    assert "Say how Mrs B chose her goals." in page


def test_access_ended_since_the_page_was_kept_is_refused(scene, client, sign_in, session, factory):
    """A second assessor taken off the candidate gets 404 on their next request, not the kept page."""
    _ann, cara, item = scene
    bob = factory.assessor(name="Bob Assessor")
    people_service.assign(session, factory.as_admin, cara, bob, "assessor")
    session.commit()
    sign_in(bob)
    assert client.get(f"/evidence/{item.id}").status_code == 200
    row = session.exec(select(CandidateAssignment).where(CandidateAssignment.user_id == bob.id)).one()
    people_service.end_assignment(session, factory.as_admin, cara, row.id)
    session.commit()
    assert client.get(f"/evidence/{item.id}").status_code == 404


def test_caseload_counts_move_with_a_change(scene, client, sign_in, session, factory):
    """The caseload's waiting count drops as soon as the evidence is accepted."""
    ann, _cara, item = scene
    sign_in(ann)
    assert "1 waiting" in " ".join(client.get("/caseload/").get_data(as_text=True).split())
    evidence_service.review(session, factory.actor(ann), item.id, "accepted", "")
    session.commit()
    assert "1 waiting" not in " ".join(client.get("/caseload/").get_data(as_text=True).split())


def test_each_person_gets_their_own_page(scene, client, sign_in, session):
    """The kept page of one person is never served to another (the candidate sees their own controls)."""
    ann, cara, item = scene
    sign_in(ann)
    assert "Accept" in client.get(f"/evidence/{item.id}").get_data(as_text=True)
    client.post("/auth/logout", data={"csrf_token": form_token(client.get("/").get_data(as_text=True))})
    from tracker.models import User
    sign_in(session.get(User, cara.user_id))
    page = client.get(f"/evidence/{item.id}").get_data(as_text=True)
    assert "Countersign" in page or "countersign" in page
    assert 'action="/evidence/' + str(item.id) + '/review"' not in page


def test_cache_is_bounded_and_keyed_by_stamp():
    """Only the newest models are kept, and a model built at another stamp is rebuilt."""
    cache, built = ReadCache(size=2), []
    for key in ("a", "b", "c"):
        cache.get(key, 1, lambda k=key: built.append(k) or k)
    cache.get("a", 1, lambda: built.append("a again") or "a")
    assert built == ["a", "b", "c", "a again"]
    assert cache.get("c", 1, lambda: "rebuilt") == "c"
    assert cache.get("c", 2, lambda: "rebuilt") == "rebuilt"
