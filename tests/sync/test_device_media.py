"""A field device fetches the files of the evidence it pulls: the centre served over real HTTP on 127.0.0.1, the
device enrolled with it and synced by the real client, faults injected by a proxy in between."""
import hashlib
import html
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from PIL import Image
from sqlmodel import Session, select

from api_support import SpoilingProxy
from device_support import PASSWORD
from support.processes import child_env
from support.web import form_token
from sync.device.client import Client, HttpTransport
from sync.device.field import database_engine, enrol, load_token
from tracker import media
from tracker.models import BlobRendition, Candidate, CandidateAssignment, Role, SyncState, User
from tracker.services import people
from tracker.storage import MB, LocalStorage

HERE = Path(__file__).parent
PDF = b"%PDF-1.7\n" + b"One-page profile: what matters to me, how best to support me.\n" * 400


def jpeg(colour: str) -> bytes:
    """Return a photo larger than the screen copy, so its thumbnail is smaller still."""
    out = io.BytesIO()
    Image.new("RGB", (2000, 1500), colour).save(out, "JPEG")
    return out.getvalue()


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


@pytest.fixture
def upload(field, session, factory, app):
    """Upload files at the centre as the candidate's work product; return each file's sha256 by name."""
    def do(**files: bytes | Path) -> dict[str, str]:
        owner = session.get(User, field.candidate.user_id)
        stored = {}
        for name, source in files.items():
            with (open(source, "rb") if isinstance(source, Path) else io.BytesIO(source)) as stream:
                stored[name] = media.ingest(session, app.extensions["storage"], stream, name, holder=owner.id).sha256
        factory.capture(owner, field.candidate, "work_product",
                        attachments=[{"sha256": sha, "filename": name} for name, sha in stored.items()])
        session.commit()
        return stored
    return do


@pytest.fixture
def tablets(field, session, tmp_path):
    """Enrol field devices with the centre at a URL, as `tracker field enrol` does; each keeps its first report."""
    made = []

    def enrolled(base: str) -> SimpleNamespace:
        session.commit()  # the centre's server reads the assessor from its own connection
        instance = tmp_path / f"tablet{len(made)}"
        instance.mkdir()
        engine = database_engine(f"sqlite:///{instance / 'tracker.db'}")
        storage = LocalStorage(instance / "media")
        report = enrol(engine, instance, base, field.assessor.email, PASSWORD, storage=storage)
        tablet = SimpleNamespace(instance=instance, engine=engine, storage=storage, report=report, apps=[])
        tablet.sync = lambda url=base, transport=None: Client(engine, storage, transport or HttpTransport(url),
                                                              load_token(instance)).sync()
        made.append(tablet)
        return tablet

    yield enrolled
    for tablet in made:
        for app in tablet.apps:
            app.extensions["engine"].dispose()
        tablet.engine.dispose()


def pages(tablet, field):
    """Sign the assessor in to the device's own tracker; return its test client."""
    from tracker import create_app

    app = create_app({"TESTING": True, "SECRET_KEY": "device-secret", "SYNC_IN_BACKGROUND": False,
                      "DATABASE_URL": str(tablet.engine.url), "MEDIA_ROOT": str(tablet.storage.root)},
                     instance=tablet.instance)
    tablet.apps.append(app)
    client = app.test_client()
    token = form_token(text(client.get("/auth/login")))
    assert client.post("/auth/login", data={"email": field.assessor.email, "password": PASSWORD,
                                            "csrf_token": token}).status_code == 302
    return client


def store_holds_only_whole_files(storage: LocalStorage) -> bool:
    """Say whether every file in the device's store is whole (named by its own hash) and no spool is left over."""
    files = [p for p in storage.root.rglob("*") if p.is_file()]
    return all(p.parent != storage.spool_dir and p.name == digest(p) for p in files)


def last_error(tablet) -> str | None:
    with Session(tablet.engine) as s:
        return s.get(SyncState, 1).last_error


def test_enrolment_brings_down_the_candidates_files_and_photo_thumbnails(centre, field, upload, tablets):
    """A PDF and a photo uploaded at the centre arrive with the first pull, equal; the photo gets its thumbnail."""
    sha = upload(**{"profile.pdf": PDF, "garden.jpg": jpeg("teal")})
    tablet = tablets(centre)
    assert tablet.report.error is None
    assert (tablet.report.files_downloaded, tablet.report.files_waiting, tablet.report.files_note) == (2, 0, "")
    assert digest(tablet.storage.path(sha["profile.pdf"])) == sha["profile.pdf"]
    assert digest(tablet.storage.path(sha["garden.jpg"])) == sha["garden.jpg"]
    with Session(tablet.engine) as s:
        thumb = s.get(BlobRendition, (sha["garden.jpg"], "thumb"))
        assert thumb is not None and s.get(BlobRendition, (sha["garden.jpg"], "screen")) is not None
        assert s.get(BlobRendition, (sha["profile.pdf"], "thumb")) is None
    with Image.open(tablet.storage.path(thumb.sha256)) as image:
        assert image.format == "JPEG" and max(image.size) == media.THUMB
    browser = pages(tablet, field)  # offline now: the device's own pages serve the files
    with browser.get(f"/files/{sha['profile.pdf']}/profile.pdf") as pdf:
        assert pdf.status_code == 200 and pdf.get_data() == PDF
    with browser.get(f"/files/{sha['garden.jpg']}/garden.jpg?size=thumb") as small:
        assert small.status_code == 200 and small.mimetype == "image/jpeg"
        assert hashlib.sha256(small.get_data()).hexdigest() == thumb.sha256
    assert store_holds_only_whole_files(tablet.storage)


@pytest.mark.parametrize("fault", ["cut", "corrupt", "html"])
def test_a_spoilt_download_stores_nothing_and_the_next_sync_completes(centre, field, upload, tablets, fault):
    """A download cut half way, bytes that do not match the hash, a captive portal's page: nothing is stored,
    the sync is not failed for it, the Sync page says what is still to come, and the next sync brings it."""
    tablet = tablets(centre)
    sha = upload(**{"profile.pdf": PDF, "garden.jpg": jpeg("orange")})
    first = min(sha.values())  # files are fetched in hash order: the first is the one spoilt
    proxy = SpoilingProxy(centre)
    try:
        proxy.faults = [fault]
        report = tablet.sync(proxy.url)
    finally:
        proxy.close()
    assert report.ok and report.error is None and last_error(tablet) is None
    assert not tablet.storage.exists(first) and store_holds_only_whole_files(tablet.storage)
    waiting = 2 if fault == "cut" else 1  # a cut connection ends the round's downloads; a bad file does not
    assert report.files_waiting == waiting and report.files_downloaded == 2 - waiting
    browser = pages(tablet, field)
    name = next(n for n, s in sha.items() if s == first)
    not_yet = browser.get(f"/files/{first}/{name}")
    assert not_yet.status_code == 404 and "downloaded from the centre at the next sync" in text(not_yet)
    home, sync_page = text(browser.get("/")), text(browser.get("/sync/"))
    assert "Last error" not in home and "nothing waiting" in home
    assert f"{waiting} file{'s' if waiting > 1 else ''} still to download from the centre" in sync_page
    done = browser.post("/sync/now", data={"csrf_token": form_token(sync_page)}, follow_redirects=True)
    assert f"{waiting} file(s) downloaded." in text(done) and "still to download" not in text(done)
    assert all(digest(tablet.storage.path(s)) == s for s in sha.values())
    assert store_holds_only_whole_files(tablet.storage)


def test_a_file_that_left_the_devices_scope_does_not_fail_the_sync(centre, field, upload, tablets, session, factory):
    """The candidate is moved away from the assessor between the pull and the downloads: the centre answers 404."""
    tablet = tablets(centre)
    sha = upload(**{"profile.pdf": PDF})

    class MovedAway(HttpTransport):
        def download(self, path, out, *, headers=None):  # noqa: ANN001, ANN202
            assignment = session.exec(select(CandidateAssignment).where(
                CandidateAssignment.candidate_id == field.candidate.id,
                CandidateAssignment.user_id == field.assessor.id, CandidateAssignment.role == Role.ASSESSOR)).one()
            people.end_assignment(session, factory.as_admin, field.candidate, assignment.id)
            session.commit()
            return super().download(path, out, headers=headers)

    report = tablet.sync(transport=MovedAway(centre))
    assert report.ok and last_error(tablet) is None
    assert (report.files_downloaded, report.files_waiting) == (0, 1) and not tablet.storage.exists(sha["profile.pdf"])
    after = tablet.sync()  # the pull takes the candidate off the device: nothing is left to fetch
    assert after.ok and (after.files_downloaded, after.files_waiting) == (0, 0)
    with Session(tablet.engine) as s:
        assert s.get(Candidate, field.candidate.id) is None


def test_a_big_file_downloads_with_the_devices_memory_flat(centre, field, upload, tablets, tmp_path):
    """A 50 MB document is streamed to disk in chunks: the device's Python memory never holds it.

    The device syncs in its own process, so the peak is the device's alone: the centre's test server runs in this
    one, and after each answer it drains the request through a 10 MB read buffer of its own.
    """
    tablet = tablets(centre)
    tablet.engine.dispose()
    big = tmp_path / "recording-transcript.pdf"
    with open(big, "wb") as out:
        out.write(b"%PDF-1.7\n")
        while out.tell() < 50 * MB:
            out.write(os.urandom(min(MB, 50 * MB - out.tell())))
    sha = upload(**{"transcript.pdf": big})["transcript.pdf"]
    done = subprocess.run([sys.executable, str(HERE / "device_memory.py"), str(tablet.instance), centre],
                          env=child_env(HERE.parent.parent, HERE),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout)
    assert found["ok"] and found["downloaded"] == 1
    assert digest(tablet.storage.path(sha)) == sha
    assert found["peak"] < 8 * MB, f"the device's sync peaked at {found['peak'] / MB:.1f} MB of Python memory"
