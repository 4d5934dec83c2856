"""Attaching a stored file by its hash: only a file attached nowhere yet, one the person may read, or one whose
bytes they sent themselves. A hash alone never gives anyone another person's file."""
import io

import pytest
from sqlmodel import func, select

from tracker import media
from tracker.errors import InvalidInput
from tracker.models import Attachment, BlobHolder, Evidence, EvidenceVersion, Signature
from tracker.services import evidence
from tracker.storage import LocalStorage

NOT_UPLOADED = "An attached file has not been uploaded yet; upload it first."
PDF = b"%PDF-1.7\n% Mrs B's one-page profile, from the care home's own records\n"


@pytest.fixture
def two_caseloads(session, factory):
    """Two assessors, each with their own candidate, and a PDF on the first candidate's evidence."""
    first, second = factory.assessor(), factory.assessor()
    mine, theirs = factory.candidate(assessors=(first,)), factory.candidate(assessors=(second,))
    sha = factory.blob(PDF).sha256
    factory.capture(first, mine, "work_product", attachments=[{"sha256": sha, "filename": "profile.pdf"}])
    session.commit()
    return first, second, mine, theirs, sha


def rows(session, model) -> int:
    return session.exec(select(func.count()).select_from(model)).one()


def test_another_persons_file_cannot_be_attached_by_its_hash(backend, session, factory, two_caseloads):
    """The second assessor names the first candidate's file: the same words as a file never stored, nothing
    written."""
    _, second, _, theirs, sha = two_caseloads
    before = (rows(session, Evidence), rows(session, Attachment))
    with pytest.raises(InvalidInput) as refused:
        factory.capture(second, theirs, "work_product", attachments=[{"sha256": sha, "filename": "stolen.pdf"}])
    assert (refused.value.message, refused.value.field) == (NOT_UPLOADED, "attachments")
    session.rollback()
    assert (rows(session, Evidence), rows(session, Attachment)) == before


def test_sending_the_same_bytes_proves_possession(backend, session, factory, two_caseloads, tmp_path):
    """Uploading identical bytes records the uploader as a holder; the same file is still stored once."""
    _, second, _, theirs, sha = two_caseloads
    stored = media.ingest(session, LocalStorage(tmp_path / "media"), io.BytesIO(PDF), "profile.pdf",
                          holder=second.id)
    assert stored.sha256 == sha
    assert session.get(BlobHolder, (sha, second.id)) is not None
    item = factory.capture(second, theirs, "work_product", attachments=[{"sha256": sha, "filename": "profile.pdf"}])
    session.commit()
    assert session.exec(select(Attachment.sha256).join(EvidenceVersion).where(
        EvidenceVersion.evidence_id == item.id)).all() == [sha]
    assert evidence.unproven(session, second, {sha}) == set()


def test_a_person_who_may_read_the_file_may_attach_it_again(backend, session, factory, two_caseloads):
    """The first assessor reuses their own candidate's file on a second piece of evidence."""
    first, _, mine, _, sha = two_caseloads
    factory.capture(first, mine, "work_product", attachments=[{"sha256": sha, "filename": "profile again.pdf"}])
    session.commit()
    assert session.exec(select(func.count()).select_from(Attachment).where(Attachment.sha256 == sha)).one() == 2


def test_another_persons_drawn_signature_cannot_be_reused(backend, session, factory, two_caseloads):
    """A countersignature image is a file like any other: naming someone else's by its hash is refused."""
    first, second, mine, theirs, _ = two_caseloads
    image = factory.blob(b"\x89PNG\r\n\x1a\n a drawn countersignature", "image/png").sha256
    factory.capture(first, mine, "observation", signatures=[{"kind": "countersignature", "image_sha256": image}])
    session.commit()
    before = rows(session, Signature)
    with pytest.raises(InvalidInput) as refused:
        factory.capture(second, theirs, "observation",
                        signatures=[{"kind": "countersignature", "image_sha256": image}])
    assert refused.value.message == NOT_UPLOADED
    session.rollback()
    assert rows(session, Signature) == before


def test_unproven_names_missing_and_unreadable_files_alike(backend, session, factory, two_caseloads):
    """The check answers a file never stored and a file the person may not read in the same way."""
    first, second, _, _, sha = two_caseloads
    never = "0" * 64
    assert evidence.unproven(session, second, {sha, never}) == {sha, never}
    assert evidence.unproven(session, first, {sha, never}) == {never}
    assert evidence.unproven(session, None, {sha}) == {sha}
