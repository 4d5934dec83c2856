"""Knowing a file's hash is not enough to attach it: the same refusal on the web form, the services and sync."""
import pytest
from sqlmodel import func, select

from sync_support import capture, push, register
from tracker.errors import InvalidInput
from tracker.models import Attachment

SECRET = b"%PDF-1.7 Mrs B's support plan (confidential)"


@pytest.fixture
def two_teams(session, factory):
    """Ann assesses Cara, whose work product holds a confidential PDF; Bob assesses Dev."""
    ann, bob = factory.assessor(name="Ann Assessor"), factory.assessor(name="Bob Assessor")
    cara = factory.candidate(name="Cara Candidate", assessors=(ann,))
    dev = factory.candidate(name="Dev Candidate", assessors=(bob,))
    sha = factory.blob(SECRET).sha256
    factory.capture(ann, cara, "work_product", attachments=[{"sha256": sha, "filename": "plan.pdf"}], submit=False)
    session.commit()
    return ann, bob, cara, dev, sha


def _attached(session, sha) -> int:
    return session.exec(select(func.count()).select_from(Attachment).where(Attachment.sha256 == sha)).one()


def test_service_refuses_someone_elses_file(two_teams, session, factory):
    """Bob cannot attach Cara's file to Dev's evidence by its hash; the refusal names no owner."""
    _ann, bob, _cara, dev, sha = two_teams
    with pytest.raises(InvalidInput, match="has not been uploaded yet") as refused:
        factory.capture(bob, dev, "work_product", attachments=[{"sha256": sha, "filename": "stolen.pdf"}])
    assert refused.value.field == "attachments"
    session.rollback()
    assert _attached(session, sha) == 1


def test_service_allows_a_file_the_person_may_read(two_teams, session, factory):
    """Ann may attach the same file again to her own candidate's evidence (a photo used twice)."""
    ann, _bob, cara, _dev, sha = two_teams
    factory.capture(ann, cara, "work_product", attachments=[{"sha256": sha, "filename": "plan again.pdf"}],
                    submit=False)
    session.commit()
    assert _attached(session, sha) == 2


def test_sync_push_refuses_someone_elses_file(two_teams, session, factory):
    """The same refusal arrives through a device's push, and nothing is written."""
    _ann, bob, _cara, dev, sha = two_teams
    device = register(session, bob)
    session.commit()
    answer = push(session, device, bob, [capture(factory, dev, 1, "work_product", submit=False,
                                                 attachments=[{"sha256": sha, "filename": "stolen.pdf"}])])
    session.commit()
    assert (answer[0].verdict, answer[0].code) == ("refused", "invalid_input")
    assert "has not been uploaded yet" in answer[0].message
    assert _attached(session, sha) == 1
