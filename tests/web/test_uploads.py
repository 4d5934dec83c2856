"""Bad files through the evidence form: each refused with a message beside the files field, nothing kept."""
import html
import io
import re
import struct
import zlib
from datetime import date, timedelta
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func
from sqlmodel import select

from support.web import form_token
from tracker import media
from tracker.models import Attachment, Blob, Evidence, Signature, User

PDF = b"%PDF-1.4\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"


def chunk(kind: bytes, data: bytes) -> bytes:
    """Return a PNG chunk with its length and CRC."""
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_claiming(width: int, height: int) -> bytes:
    """Return a 1×1 PNG whose header claims another size (a decompression bomb's calling card)."""
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00"))
            + chunk(b"IEND", b""))


def photo(colour: str = "orange") -> bytes:
    """Return a real JPEG photo."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(out, "JPEG")
    return out.getvalue()


def png() -> bytes:
    """Return a real PNG."""
    out = io.BytesIO()
    Image.new("RGB", (8, 8), "teal").save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def candidate(backend, app, session, factory):
    """Cara, with an assessor, ready to upload work products."""
    c = factory.candidate(name="Cara Candidate", assessors=(factory.assessor(),))
    session.commit()
    return c


@pytest.fixture
def token(client, sign_in, session, candidate) -> str:
    """Cara signed in; her CSRF token."""
    assert sign_in(session.get(User, candidate.user_id)).status_code == 302
    return form_token(client.get(f"/candidates/{candidate.id}/evidence/new/work_product").get_data(as_text=True))


def upload(client, candidate, token, *files: tuple[bytes, str]):
    """Post Cara's work product form with files, declaration ticked, submitting it."""
    data = {"csrf_token": token, "title": "Support plan for Mr K", "activity_date": (date.today() - timedelta(days=2))
            .isoformat(), "narrative": "Mr K's plan, written with him.", "criteria": "2.1", "declaration": "yes",
            "action": "submit", "files": [(io.BytesIO(content), name) for content, name in files]}
    return client.post(f"/candidates/{candidate.id}/evidence/new/work_product", data=data,
                       content_type="multipart/form-data")


def count(session, model) -> int:
    """Count rows as the app has committed them."""
    session.commit()
    return session.exec(select(func.count()).select_from(model)).one()


BAD = [
    pytest.param(png_claiming(50_000, 50_000), "plan.png",
                 "This image is too large to process safely", id="pixel-bomb"),
    pytest.param(png(), "support plan.pdf", "is a PNG image, not a PDF document", id="png-named-pdf"),
    pytest.param(b"<!doctype html><html><script>alert(1)</script></html>", "profile.jpg",
                 "“profile.jpg” is not a file type the tracker accepts", id="html-named-jpg"),
    pytest.param(b"", "empty.pdf", "The file is empty.", id="zero-bytes"),
    pytest.param(b'<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>', "drawing.svg",
                 "“drawing.svg” is not a file type the tracker accepts", id="svg"),
    pytest.param(b"MZ\x90\x00\x03\x00\x00\x00" + b"\x00" * 56, "plan.exe",
                 "“plan.exe” is not a file type the tracker accepts", id="exe"),
    pytest.param(PDF, "plan.exe", "is a PDF document, not a program", id="pdf-named-exe"),
]


@pytest.mark.parametrize("content, name, message", BAD)
def test_bad_file_refused_on_the_form(client, session, candidate, token, content, name, message):
    """A bad file is refused with its message beside the files field; no evidence, file or attachment is kept."""
    response = upload(client, candidate, token, (content, name))
    text = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 422
    error = re.search(r'<p class="field-error" id="files-error">(.*?)</p>', text, re.S)
    assert error and message in error.group(1)
    assert 'value="Support plan for Mr K"' in text  # what was typed is still there
    assert (count(session, Evidence), count(session, Attachment), count(session, Blob)) == (0, 0, 0)


def test_file_over_the_limit_refused(client, session, candidate, token, monkeypatch):
    """A document over the documents' limit is refused, naming the limit."""
    monkeypatch.setitem(media.LIMITS, "document", 1024)
    response = upload(client, candidate, token, (PDF + b"%" * 2048, "big plan.pdf"))
    assert response.status_code == 422
    assert "The file is larger than the 1024 bytes allowed for documents." in response.get_data(as_text=True)
    assert (count(session, Evidence), count(session, Attachment), count(session, Blob)) == (0, 0, 0)


def test_hostile_file_name_stored_under_a_safe_name(client, session, candidate, token, app):
    """A PDF named ../../etc/passwd.pdf is accepted and kept as passwd.pdf, served from its hash."""
    response = upload(client, candidate, token, (PDF, "../../etc/passwd.pdf"))
    assert response.status_code == 303
    attachment = session.exec(select(Attachment)).one()
    assert attachment.filename == "passwd.pdf"
    with client.get(f"/files/{attachment.sha256}/{attachment.filename}") as served:
        assert served.status_code == 200 and served.data == PDF
    assert not list(Path(app.instance_path).rglob("passwd*")), "stored under its hash, never under its name"


def test_pdf_and_photo_in_one_request(client, session, candidate, token):
    """A PDF and a photo sent together make one work product with two attachments and Cara's declaration."""
    response = upload(client, candidate, token, (PDF, "support plan.pdf"), (photo(), "whiteboard.jpg"))
    assert response.status_code == 303
    item = session.exec(select(Evidence)).one()
    assert (item.method, item.status) == ("work_product", "submitted")
    assert sorted(session.exec(select(Attachment.filename))) == ["support plan.pdf", "whiteboard.jpg"]
    assert list(session.exec(select(Signature.kind))) == ["authenticity"]


def test_same_photo_twice_stored_once(client, session, candidate, token):
    """The same photo uploaded with two pieces of evidence is stored once and attached to both."""
    assert upload(client, candidate, token, (photo(), "plan.jpg")).status_code == 303
    blobs = count(session, Blob)
    assert upload(client, candidate, token, (photo(), "plan again.jpg")).status_code == 303
    assert count(session, Blob) == blobs and count(session, Evidence) == 2
    assert len(set(session.exec(select(Attachment.sha256)))) == 1


def test_good_file_kept_when_another_is_refused(client, session, candidate, token):
    """A PDF sent with a refused SVG is listed as already uploaded, so only the SVG needs replacing."""
    response = upload(client, candidate, token, (PDF, "support plan.pdf"), (b"<svg></svg>", "drawing.svg"))
    text = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 422 and "“drawing.svg” is not a file type the tracker accepts" in text
    kept = re.search(r'name="kept" value="([0-9a-f]{64})\|support plan.pdf" checked', text)
    assert kept and "Already uploaded" in text and count(session, Evidence) == 0
    retry = client.post(f"/candidates/{candidate.id}/evidence/new/work_product", data={
        "csrf_token": token, "title": "Support plan for Mr K", "activity_date": date.today().isoformat(),
        "narrative": "Mr K's plan.", "criteria": "2.1", "declaration": "yes", "action": "submit",
        "kept": f"{kept.group(1)}|support plan.pdf"})
    assert retry.status_code == 303
    assert list(session.exec(select(Attachment.filename))) == ["support plan.pdf"]
