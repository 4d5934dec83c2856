"""Media over real HTTP, on the local folder and on an S3-compatible store (sync-guarantees tests 6 and 7)."""
import hashlib
import socket
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlmodel import select
from test_media import tagged_jpeg
from test_storage_s3 import s3_endpoint  # noqa: F401 - the moto server fixture, started once for the run

from api_support import Device, serve, verdicts
from sync.centre import media as media_sync
from sync_support import capture, count
from tracker import media as pipeline
from tracker.models import Attachment, Blob, BlobRendition, Evidence, EvidenceVersion, Upload

MB = 1024 * 1024


@pytest.fixture(params=["local", "s3"])
def media_app(request, database_url, tmp_path):
    """The app on this test's database with its files on the local folder or in an S3 bucket."""
    from tracker import create_app

    config = {"TESTING": True, "SECRET_KEY": "test-secret", "DATABASE_URL": database_url}
    if request.param == "s3":
        import boto3
        from botocore.config import Config

        endpoint = request.getfixturevalue("s3_endpoint")
        bucket = f"evidence-{uuid.uuid4().hex[:12]}"
        boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                     config=Config(s3={"addressing_style": "path"})).create_bucket(Bucket=bucket)
        config |= {"STORAGE": "s3", "S3_BUCKET": bucket, "S3_ENDPOINT_URL": endpoint, "S3_REGION": "us-east-1",
                   "S3_ADDRESSING_STYLE": "path"}
    app = create_app(config, instance=tmp_path / "instance")
    yield app
    app.extensions["engine"].dispose()


@pytest.fixture
def field(media_app, session, factory):
    """An assessor with a candidate, signed in on a device talking to the served centre."""
    assessor = factory.assessor()
    candidate = factory.candidate(assessors=(assessor,))
    session.commit()
    with serve(media_app) as base:
        device = Device(base)
        assert device.enrol(assessor).status_code == 201
        device.app, device.assessor, device.candidate = media_app, assessor, candidate
        yield device


def clean_photo(tmp_path: Path) -> bytes:
    """A photo as a device sends it: already cleaned by the media pipeline."""
    source = tmp_path / "raw.jpg"
    source.write_bytes(tagged_jpeg((900, 700)))
    return pipeline.process_image(source).full.data


def sha(data: bytes) -> str:
    """Return the sha256 hex of some bytes."""
    return hashlib.sha256(data).hexdigest()


def put(device: Device, data: bytes, *, size: int, offset: int = 0, name: str | None = None):  # noqa: ANN201
    """Send one part of a file."""
    return device.put(f"/api/v1/uploads/{name or sha(data)}", data, params={"size": size, "offset": offset})


def state(device: Device, digest: str) -> dict:
    """Ask how much of a file the centre has."""
    answer = device.get(f"/api/v1/uploads/{digest}")
    assert answer.status_code == 200, answer.text
    return answer.json()


def cut_off(device: Device, digest: str, part: bytes, declared: int, sent: int) -> None:
    """Send a part whose connection drops after `sent` of its bytes (a tablet losing signal)."""
    address = urlsplit(device.base)
    request = (f"PUT /api/v1/uploads/{digest}?size={declared}&offset=0 HTTP/1.1\r\nHost: {address.netloc}\r\n"
               f"Authorization: Bearer {device.token}\r\nX-Tracker-Protocol: 1\r\nX-Tracker-Schema: 0004\r\n"
               f"Content-Type: application/octet-stream\r\nContent-Length: {len(part)}\r\n\r\n").encode()
    with socket.create_connection((address.hostname, address.port), timeout=10) as conn:
        conn.sendall(request + part[:sent])
        conn.shutdown(socket.SHUT_WR)
        conn.recv(1024)  # the centre has read what came and answered (or closed)


def stored(device: Device, digest: str) -> bytes | None:
    """Return a file's bytes from the app's store, or None if it is not there."""
    storage = device.app.extensions["storage"]
    if not storage.exists(digest):
        return None
    with storage.open(digest) as stream:
        return stream.read()


def nothing_kept(device: Device, session, digest: str) -> bool:  # noqa: ANN001
    """Say whether the centre holds nothing of a refused file: no row, no part upload, no bytes, no spool."""
    session.expire_all()
    return (session.get(Blob, digest) is None and session.get(Upload, (uuid.UUID(device.device_id), digest)) is None
            and stored(device, digest) is None
            and not media_sync.spool_path(device.app.extensions["storage"], digest, device.device_id).exists())


def test_photo_cut_off_half_way_resumes_and_completes(field, session, factory, tmp_path):
    """Test 6: the record is held as media_missing until the photo is whole; the resumed upload completes with
    the same sha256, and the record is then applied with its photo."""
    photo = clean_photo(tmp_path)
    digest, half = sha(photo), len(photo) // 2
    item = capture(factory, field.candidate, 1, "observation",
                   attachments=[{"sha256": digest, "filename": "care plan on the wall.jpg"}])
    session.commit()
    answer = field.push([item])
    assert verdicts(answer) == ["held"] and answer.json()["verdicts"][0]["code"] == "media_missing"
    cut_off(field, digest, photo, len(photo), half)
    for _ in range(50):
        if state(field, digest)["received"]:
            break
        time.sleep(0.1)
    assert state(field, digest) == {"sha256": digest, "size": len(photo), "received": half, "complete": False}
    assert verdicts(field.push([item])) == ["held"]  # still incomplete: never applied half-attached
    assert count(session, Evidence) == 0
    rest = put(field, photo[half:], size=len(photo), offset=half, name=digest)
    assert rest.status_code == 201, rest.text
    assert rest.json()["complete"] is True
    assert state(field, digest) == {"sha256": digest, "size": len(photo), "received": len(photo), "complete": True}
    assert sha(stored(field, digest)) == digest
    assert verdicts(field.push([item])) == ["applied"]
    session.expire_all()
    assert session.exec(select(Attachment.sha256)).all() == [digest]
    assert session.get(Blob, digest).media_type == "image/jpeg"
    assert session.get(BlobRendition, (digest, "thumb")) is not None  # the pages can show it
    assert put(field, photo, size=len(photo)).json()["complete"] is True  # sent again: already there


def test_parts_in_order_repeat_harmlessly_and_gaps_are_refused(field, session, tmp_path):
    """G7: a repeated part answers the current state; a part past what arrived is 409 upload_gap."""
    photo = clean_photo(tmp_path)
    digest, third = sha(photo), len(photo) // 3
    assert put(field, photo[:third], size=len(photo), name=digest).json()["received"] == third
    again = put(field, photo[:third], size=len(photo), name=digest)
    assert again.status_code == 200 and again.json()["received"] == third
    gap = put(field, photo[2 * third:], size=len(photo), offset=2 * third, name=digest)
    assert gap.status_code == 409 and gap.json() | {"message": ""} == {"error": "upload_gap", "received": third,
                                                                      "message": ""}
    overlap = put(field, photo[third // 2:2 * third], size=len(photo), offset=third // 2, name=digest)
    assert overlap.json()["received"] == 2 * third
    done = put(field, photo[2 * third:], size=len(photo), offset=2 * third, name=digest)
    assert done.status_code == 201 and sha(stored(field, digest)) == digest


def test_hash_mismatch_is_refused_and_discarded(field, session, tmp_path):
    """Test 7: bytes that do not match the name they were sent under: 422 hash_mismatch, nothing kept."""
    photo = clean_photo(tmp_path)
    wrong = sha(photo + b"x")
    answer = put(field, photo, size=len(photo), name=wrong)
    assert answer.status_code == 422 and answer.json()["error"] == "hash_mismatch"
    assert nothing_kept(field, session, wrong)


def test_truncated_file_is_never_complete(field, session, factory, tmp_path):
    """Test 7: a file that stops short of its declared size stays incomplete; its record stays held."""
    photo = clean_photo(tmp_path)
    digest = sha(photo)
    answer = put(field, photo[:-100], size=len(photo), name=digest)
    assert answer.status_code == 200 and answer.json()["complete"] is False
    session.expire_all()
    assert session.get(Blob, digest) is None and stored(field, digest) is None
    item = capture(factory, field.candidate, 1, attachments=[{"sha256": digest, "filename": "a.jpg"}])
    session.commit()
    assert verdicts(field.push([item])) == ["held"]


def test_longer_than_declared_is_refused(field, session, tmp_path):
    """More bytes than the declared size: 413 too_long, and the extra is never written."""
    photo = clean_photo(tmp_path)
    answer = put(field, photo, size=len(photo) - 10, name=sha(photo))
    assert answer.status_code == 413 and answer.json()["error"] == "too_long"
    session.expire_all()
    assert session.get(Blob, sha(photo)) is None


def test_undeclared_file_is_never_attached(field, session, factory):
    """Test 7: a record naming a file the device never sent is held as media_missing, never applied."""
    digest = sha(b"never sent")
    item = capture(factory, field.candidate, 1, "work_product", attachments=[{"sha256": digest, "filename": "x.pdf"}])
    session.commit()
    for _ in range(3):
        assert verdicts(field.push([item])) == ["held"]
    assert count(session, Evidence) == 0 and count(session, Attachment) == 0


@pytest.mark.parametrize("size", [pipeline.LIMITS["image"] + 1, 600 * MB])
def test_over_the_size_limit_is_refused_up_front(field, session, tmp_path, size):
    """Test 7: a photo declared larger than the photo limit, or any file over the largest: 413 with the limit."""
    photo = clean_photo(tmp_path)
    answer = put(field, photo, size=size)
    assert answer.status_code == 413
    body = answer.json()
    assert body["error"] == "too_large" and body["limit"] in (pipeline.LIMITS["image"], max(pipeline.LIMITS.values()))
    assert "MB" in body["message"]
    assert nothing_kept(field, session, sha(photo))


def test_part_larger_than_the_part_limit_is_413(field, session):
    """A single part over limits.part: 413 before it is read."""
    data = b"%PDF-1.7 " + b"0" * (media_sync.PART + 1)
    answer = put(field, data, size=len(data))
    assert answer.status_code == 413 and answer.json()["limit"] == media_sync.PART


def test_unknown_type_is_415(field, session):
    """A file of a type the centre does not take (a script): 415 unsupported_media, nothing kept."""
    data = b"#!/bin/sh\nrm -rf /\n"
    answer = put(field, data, size=len(data))
    assert answer.status_code == 415 and answer.json()["error"] == "unsupported_media"
    assert nothing_kept(field, session, sha(data))


def test_photo_with_exif_and_gps_is_refused(field, session):
    """A photo still carrying EXIF and GPS (not cleaned on the device): 422 media_not_clean, nothing kept."""
    photo = tagged_jpeg()
    answer = put(field, photo, size=len(photo))
    assert answer.status_code == 422 and answer.json()["error"] == "media_not_clean"
    assert nothing_kept(field, session, sha(photo))


@pytest.mark.parametrize("filename", ["../../etc/passwd", "<script>alert(1)</script>.pdf", "C:\\Windows\\x.pdf",
                                      "con.pdf", "\u202eexe.pdf", "a" * 300])
def test_hostile_file_names_are_made_safe_or_refused(field, session, factory, filename):
    """Test 7: a hostile attachment name never reaches the store as given: refused, or kept as a safe name."""
    data = b"%PDF-1.7 support plan"
    assert put(field, data, size=len(data)).status_code == 201
    item = capture(factory, field.candidate, 1, "work_product",
                   attachments=[{"sha256": sha(data), "filename": filename}])
    session.commit()
    answer = field.push([item])
    verdict = answer.json()["verdicts"][0]
    session.expire_all()
    names = session.exec(select(Attachment.filename)).all()
    if verdict["verdict"] == "refused":
        assert verdict["code"] and names == []
    else:
        assert verdict["verdict"] == "applied"
        (name,) = names
        assert "/" not in name and "\\" not in name and "<" not in name and len(name) <= 255


@pytest.mark.parametrize(("path", "params", "status"), [
    ("/api/v1/uploads/NOTAHASH", {"size": 1, "offset": 0}, 400),
    ("/api/v1/uploads/" + "A" * 64, {"size": 1, "offset": 0}, 400),
    ("/api/v1/uploads/" + "a" * 64, {"offset": 0}, 400),
    ("/api/v1/uploads/" + "a" * 64, {"size": "x", "offset": 0}, 400),
    ("/api/v1/uploads/" + "a" * 64, {"size": 5, "offset": -1}, 400),
    ("/api/v1/uploads/" + "a" * 64, {"size": 0, "offset": 0}, 400),
])
def test_malformed_upload_requests_are_400(field, session, path, params, status):
    """Bad hashes and missing or wrong-typed size and offset: a JSON 400, nothing kept."""
    answer = field.put(path, b"%PDF", params=params)
    assert answer.status_code == status and answer.json()["error"] == "invalid_input"
    assert count(session, Upload) == 0


def another_assessors_file(session, factory) -> str:  # noqa: ANN001
    """Give another assessor's candidate a work product; return its file's sha256."""
    other_assessor = factory.assessor()
    theirs = factory.capture(other_assessor, factory.candidate(assessors=(other_assessor,)), "work_product")
    session.commit()
    return session.exec(select(Attachment.sha256).join(EvidenceVersion).where(
        EvidenceVersion.evidence_id == theirs.id)).one()


def test_media_is_served_only_within_scope(field, session, factory, tmp_path):
    """GET media: the bytes of a file on evidence in scope; 404 for another assessor's file or an unknown one."""
    data = b"%PDF-1.7 mine"
    assert put(field, data, size=len(data)).status_code == 201
    item = capture(factory, field.candidate, 1, "work_product", attachments=[{"sha256": sha(data), "filename": "a.pdf"}])
    session.commit()
    assert verdicts(field.push([item])) == ["applied"]
    answer = field.get(f"/api/v1/media/{sha(data)}")
    assert answer.status_code == 200 and answer.content == data
    assert answer.headers["Content-Type"] == "application/pdf"
    their_sha = another_assessors_file(session, factory)
    for digest in (their_sha, sha(b"unknown")):
        refused = field.get(f"/api/v1/media/{digest}")
        assert refused.status_code == 404 and refused.json()["error"] == "not_found"


def test_a_file_known_only_by_its_hash_must_be_sent_before_it_is_attached(field, session, factory):
    """Another assessor's file named by its hash: the centre says it does not hold it, the record waits as
    media_missing and the file stays unreadable; once the device sends the bytes, the record is applied."""
    their_sha = another_assessors_file(session, factory)
    data = stored(field, their_sha) or b"%PDF-1.7 test"  # the factory's bytes: its Blob row has no stored file
    assert sha(data) == their_sha
    assert state(field, their_sha) == {"sha256": their_sha, "size": None, "received": 0, "complete": False}
    item = capture(factory, field.candidate, 1, "work_product",
                   attachments=[{"sha256": their_sha, "filename": "borrowed.pdf"}])
    session.commit()
    answer = field.push([item])
    assert verdicts(answer) == ["held"] and answer.json()["verdicts"][0]["result"] == {"missing": [their_sha]}
    assert field.get(f"/api/v1/media/{their_sha}").status_code == 404
    assert count(session, Attachment) == 1
    assert put(field, data, size=len(data)).status_code == 201
    assert state(field, their_sha)["complete"] is True
    assert verdicts(field.push([item])) == ["applied"]
    assert field.get(f"/api/v1/media/{their_sha}").content == data


def _second_device(field: Device, session, factory) -> Device:  # noqa: ANN001
    """Another assessor's device, signed in on the same centre."""
    other = factory.assessor(name="Bob Assessor")
    session.commit()
    device = Device(field.base)
    assert device.enrol(other).status_code == 201
    device.app = field.app
    return device


def test_another_device_can_neither_block_nor_spoil_an_upload(field, session, factory):
    """Two devices sending files named by the same hash each have their own upload: a device that sends other
    bytes (or another size) under that name spoils only its own, and the first device's file completes whole."""
    data = b"%PDF-1.7 " + b"x" * 3000
    digest = sha(data)
    intruder = _second_device(field, session, factory)
    assert put(field, data[:1000], size=len(data), name=digest).status_code == 200
    # Another person's device starts the same name with a different size, then sends bytes that are not the file.
    assert put(intruder, b"%PDF-1.7 evil", size=50, name=digest).status_code == 200
    assert state(intruder, digest)["received"] == 13 and state(field, digest)["received"] == 1000
    answer = put(intruder, b"y" * 37, size=50, offset=13, name=digest)
    assert answer.status_code == 422 and answer.json()["error"] == "hash_mismatch"
    done = put(field, data[1000:], size=len(data), offset=1000, name=digest)
    assert done.status_code == 201 and stored(field, digest) == data


def test_a_device_may_have_only_so_many_unfinished_uploads(field, session, monkeypatch):
    """A device may have at most MAX_UNFINISHED files part-sent: the next one is refused (409) until one of them
    is finished; the cap is per device."""
    monkeypatch.setattr(media_sync, "MAX_UNFINISHED", 3)
    files = [b"%PDF-1.7 " + bytes([n]) * 2000 for n in range(4)]
    for data in files[:3]:
        assert put(field, data[:500], size=len(data), name=sha(data)).status_code == 200
    refused = put(field, files[3][:500], size=len(files[3]), name=sha(files[3]))
    assert refused.status_code == 409 and refused.json()["error"] == "too_many_uploads"
    assert count(session, Upload) == 3
    assert put(field, files[0][500:], size=len(files[0]), offset=500, name=sha(files[0])).status_code == 201
    assert put(field, files[3][:500], size=len(files[3]), name=sha(files[3])).status_code == 200


def test_unfinished_uploads_are_capped_by_declared_size_too(field, session, monkeypatch):
    """The declared sizes of a device's unfinished uploads have a ceiling too."""
    monkeypatch.setattr(media_sync, "MAX_UNFINISHED_BYTES", 5000)
    first, second = b"%PDF-1.7 " + b"a" * 3000, b"%PDF-1.7 " + b"b" * 3000
    assert put(field, first[:500], size=len(first), name=sha(first)).status_code == 200
    answer = put(field, second[:500], size=len(second), name=sha(second))
    assert answer.status_code == 409 and "part-sent" in answer.json()["message"]
