"""`tracker backup` and `tracker restore` through the real command line, on SQLite and PostgreSQL: what is written,
what comes back, and every refusal leaving the centre as it was."""
import hashlib
import io
import json
import os
import threading

import pytest
from click.testing import CliRunner
from sqlalchemy import text
from sqlmodel import Session, func, select

from support.factories import TODAY, Factory
from tracker import backup
from tracker.audit import verify
from tracker.cli import main
from tracker.db import make_engine, upgrade
from tracker.models import AuditHead, Evidence, EvidenceVersion
from tracker.storage import LocalStorage, store

SECRET = "SECRET_KEY = 'the centre key'\n"


@pytest.fixture
def instance(tmp_path):
    """The centre's instance folder, with its config."""
    folder = tmp_path / "instance"
    folder.mkdir()
    (folder / "config.py").write_text(SECRET, encoding="utf-8")
    return folder


@pytest.fixture
def tracker(instance, database_url, monkeypatch):
    """Run a tracker command on this test's instance and database, as an administrator would."""
    monkeypatch.delenv("DATABASE_URL", raising=False)
    runner = CliRunner()

    def invoke(*args, input=None, url=database_url):
        return runner.invoke(main, ["--instance", str(instance), "--database-url", url, *args], input=input)

    return invoke


@pytest.fixture
def media(instance):
    """The centre's local media store."""
    return LocalStorage(instance / "media")


@pytest.fixture
def centre(session, factory, media):
    """A small centre: an assessor, a candidate and two pieces of evidence, one with a stored photo."""
    assessor = factory.assessor()
    candidate = factory.candidate(assessors=(assessor,))
    photo = store(session, media, io.BytesIO(b"\xff\xd8 a photo of the plan"), "image/jpeg", 1000)
    factory.capture(assessor, candidate, "observation", title="Observed before the backup")
    factory.capture(assessor, candidate, "observation", title="Also before the backup")
    session.commit()
    return {"assessor": assessor, "candidate": candidate, "photo": photo.sha256}


def titles(engine) -> set[str]:
    """Return the titles of every evidence version, read afresh (a restore may have replaced the database file)."""
    engine.dispose()
    with Session(engine) as session:
        return set(session.exec(select(EvidenceVersion.title)))


def manifest_of(folder) -> dict:
    """Read a backup's manifest."""
    return json.loads((folder / "MANIFEST.json").read_text(encoding="utf-8"))


def sha256(path) -> str:
    """Return a file's sha256."""
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_backup_writes_the_database_media_config_and_a_manifest(tracker, centre, engine, backend, tmp_path):
    """The folder holds the dump, the media, config.py (0600) and a manifest naming each file with its sha256."""
    out = tmp_path / "backups" / "monday"
    result = tracker("backup", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert f"Backup written to {out}" in result.output and "1 files" in result.output
    dump = {"sqlite": "tracker.db", "postgresql": "tracker.pgdump"}[backend]
    manifest = manifest_of(out)
    listed = {f["path"]: f for f in manifest["files"]}
    photo = f"media/{centre['photo'][:2]}/{centre['photo'][2:4]}/{centre['photo']}"
    assert set(listed) == {dump, "config.py", photo}
    assert all(sha256(out / p) == f["sha256"] and (out / p).stat().st_size == f["size"] for p, f in listed.items())
    assert (out / "config.py").read_text() == SECRET and (out / "config.py").stat().st_mode & 0o777 == 0o600
    with Session(engine) as session:
        head = session.get(AuditHead, 1)
        assert manifest["audit_head"] == {"seq": head.seq, "hash": head.hash}
    assert (manifest["format"], manifest["database"], manifest["alembic_revision"]) == (
        1, backend, backup.known_revisions()[1])
    assert manifest["counts"]["evidence"] == 2 and manifest["counts"]["candidate"] == 1
    assert manifest["created_at"].endswith("+00:00") and manifest["media"]["files"] == 1
    assert [p.name for p in out.parent.iterdir()] == ["monday"]  # no work folder left beside it


@pytest.fixture
def made(tracker, centre, factory, session, engine, tmp_path):
    """A backup, then evidence added after it: a restore removes that evidence, a refused one leaves it."""
    out = tmp_path / "backup"
    assert tracker("backup", "--out", str(out)).exit_code == 0
    factory.capture(centre["assessor"], centre["candidate"], "observation", title="Added after the backup")
    session.commit()
    session.close()
    engine.dispose()
    return out


def assert_unchanged(engine) -> None:
    """The evidence added after the backup is still there: nothing was restored."""
    assert "Added after the backup" in titles(engine)


def test_restore_brings_back_the_moment_of_the_backup(tracker, made, engine):
    """Evidence added after the backup is gone after a restore; everything before it is there; the chain verifies."""
    result = tracker("restore", str(made), "--yes")
    assert result.exit_code == 0, result.output
    assert titles(engine) == {"Observed before the backup", "Also before the backup"}
    assert "Audit log intact" in result.output and "2 pieces of evidence" in result.output
    with Session(engine) as fresh:
        assert verify(fresh).intact


def test_a_backup_taken_while_evidence_is_written_is_one_moment(tracker, centre, engine, tmp_path):
    """Evidence keeps arriving from another thread during the backup; the restored copy is whole and its chain
    verifies, with exactly the counts and audit head its manifest recorded."""
    written, stop = threading.Semaphore(0), threading.Event()

    def keep_writing():
        with Session(engine, expire_on_commit=False) as own:
            writer = Factory(own, TODAY)
            assessor, candidate = own.merge(centre["assessor"]), own.merge(centre["candidate"])
            while not stop.is_set():
                writer.capture(assessor, candidate, "observation")
                own.commit()
                written.release()

    thread = threading.Thread(target=keep_writing)
    thread.start()
    try:
        for _ in range(3):
            assert written.acquire(timeout=30)  # the writer is under way before the backup starts
        result = tracker("backup", "--out", str(tmp_path / "backup"))
        assert written.acquire(timeout=30)  # and still writing after it
    finally:
        stop.set()
        thread.join()
    assert result.exit_code == 0, result.output
    manifest = manifest_of(tmp_path / "backup")
    engine.dispose()
    restored = tracker("restore", str(tmp_path / "backup"), "--yes")
    assert restored.exit_code == 0 and "Audit log intact" in restored.output, restored.output
    with Session(engine) as fresh:
        assert fresh.exec(select(func.count()).select_from(Evidence)).one() == manifest["counts"]["evidence"]
        head = fresh.get(AuditHead, 1)
        assert {"seq": head.seq, "hash": head.hash} == manifest["audit_head"]
    assert manifest["counts"]["evidence"] > 2


@pytest.mark.parametrize("damage, message", [
    (lambda out: (out / "MANIFEST.json").unlink(), "is not a backup made by `tracker backup`"),
    (lambda out: (out / "MANIFEST.json").write_text("{not json"), "is not a manifest written by `tracker backup`"),
    (lambda out: (out / "MANIFEST.json").write_text('{"files": []}'), "is not a manifest written by"),
])
def test_restore_refuses_a_folder_that_is_not_a_backup(tracker, made, engine, damage, message):
    """A folder without a sound manifest is refused with a clear message, and nothing changes."""
    damage(made)
    result = tracker("restore", str(made), "--yes")
    assert result.exit_code == 1 and message in result.output and "Traceback" not in result.output
    assert_unchanged(engine)


@pytest.mark.parametrize("where", ["database", "media", "config.py"])
def test_restore_refuses_a_tampered_file(tracker, made, engine, where):
    """A file whose bytes no longer match the manifest's sha256 is named, and nothing changes."""
    listed = [f["path"] for f in manifest_of(made)["files"]]
    path = next(p for p in listed if p.startswith(where) or (where == "database" and p.startswith("tracker.")))
    with open(made / path, "r+b") as stream:
        first = stream.read(1)
        stream.seek(0)
        stream.write(bytes([first[0] ^ 1]))
    result = tracker("restore", str(made), "--yes")
    assert result.exit_code == 1
    assert f"{path} does not match its sha256" in result.output and "Nothing was restored" in result.output
    assert_unchanged(engine)


def test_restore_refuses_a_missing_file_or_one_named_outside_the_backup(tracker, made, engine):
    """A listed file that is gone, or a manifest pointing outside its folder, is refused."""
    manifest = manifest_of(made)
    (made / "config.py").unlink()
    assert "config.py is missing" in tracker("restore", str(made), "--yes").output
    manifest["files"][0]["path"] = "../../etc/passwd"
    (made / "MANIFEST.json").write_text(json.dumps(manifest))
    assert "outside the backup folder" in tracker("restore", str(made), "--yes").output
    assert_unchanged(engine)


def test_restore_refuses_another_kind_of_database(tracker, made, engine, backend, tmp_path):
    """A SQLite backup is not restored into PostgreSQL, nor the other way round; no connection is even tried."""
    other = {"sqlite": "postgresql://tracker@127.0.0.1:1/nowhere", "postgresql": f"sqlite:///{tmp_path / 'x.db'}"}
    result = tracker("restore", str(made), "--yes", url=other[backend])
    assert result.exit_code == 1 and "restore it into the same kind of database" in result.output
    assert not (tmp_path / "x.db").exists()
    assert_unchanged(engine)


def test_restore_refuses_a_backup_from_a_newer_tracker(tracker, made, engine):
    """A backup whose schema revision this tracker does not know asks for an upgrade, and nothing changes."""
    manifest = manifest_of(made) | {"alembic_revision": "0099"}
    (made / "MANIFEST.json").write_text(json.dumps(manifest))
    result = tracker("restore", str(made), "--yes")
    assert result.exit_code == 1 and "made by a newer version of the tracker" in result.output
    assert "revision 0099" in result.output and "upgrade the tracker" in result.output
    assert_unchanged(engine)


def test_answering_no_changes_nothing_and_yes_restores(tracker, made, engine):
    """Without --yes the restore asks first: no leaves the data alone, yes restores."""
    declined = tracker("restore", str(made), input="n\n")
    assert declined.exit_code == 1 and "Replace the current data with this backup? [y/N]" in declined.output
    assert "nothing was changed" in declined.output
    assert_unchanged(engine)
    accepted = tracker("restore", str(made), input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert "Added after the backup" not in titles(engine)


def test_backup_refuses_a_folder_that_is_not_empty_or_is_a_file(tracker, centre, tmp_path):
    """An earlier backup is never mixed with a new one; an empty folder is fine."""
    (tmp_path / "used").mkdir()
    (tmp_path / "used" / "notes.txt").write_text("keep")
    (tmp_path / "a-file").write_text("keep")
    (tmp_path / "empty").mkdir()
    used = tracker("backup", "--out", str(tmp_path / "used"))
    assert used.exit_code == 1 and "is not empty" in used.output
    assert [p.name for p in (tmp_path / "used").iterdir()] == ["notes.txt"]
    file = tracker("backup", "--out", str(tmp_path / "a-file"))
    assert file.exit_code == 1 and "is a file, not a folder" in file.output
    assert tracker("backup", "--out", str(tmp_path / "empty")).exit_code == 0
    assert (tmp_path / "empty" / "MANIFEST.json").is_file()


@pytest.mark.parametrize("where", ["/proc/tracker-backup", "{tmp}/a-file/backup"])
def test_backup_into_an_unwritable_place_is_a_clear_error(tracker, centre, tmp_path, where):
    """A folder that cannot be written is one clear line, with nothing left behind."""
    (tmp_path / "a-file").write_text("keep")
    result = tracker("backup", "--out", where.format(tmp=tmp_path))
    assert result.exit_code == 1 and "Writing the backup to" in result.output and "failed" in result.output
    assert "Traceback" not in result.output and (tmp_path / "a-file").read_text() == "keep"


def test_restore_of_a_file_or_a_missing_folder_is_a_clear_error(tracker, tmp_path):
    """Restore names what is wrong with the path it was given."""
    (tmp_path / "a-file").write_text("keep")
    assert "is a file, not a backup folder" in tracker("restore", str(tmp_path / "a-file"), "--yes").output
    assert "There is no backup at" in tracker("restore", str(tmp_path / "nowhere"), "--yes").output


@pytest.mark.skipif(os.geteuid() == 0, reason="permissions do not stop root")
def test_restore_of_an_unreadable_backup_is_a_clear_error(tracker, made, engine):
    """A backup the administrator cannot read is one clear line, and nothing changes."""
    (made / "config.py").chmod(0)
    result = tracker("restore", str(made), "--yes")
    assert result.exit_code == 1 and "Permission denied" in result.output
    assert_unchanged(engine)


def test_media_missing_after_restore_come_back_and_later_ones_stay(tracker, centre, media, engine, tmp_path):
    """A lost file is copied back, a damaged one replaced, and a file stored after the backup is kept."""
    second = media.put(io.BytesIO(b"a scanned care plan"), 1000)[0]
    assert tracker("backup", "--out", str(tmp_path / "backup")).exit_code == 0
    media.path(centre["photo"]).unlink()
    media.path(second).write_bytes(b"damaged")
    later = media.put(io.BytesIO(b"a photo taken after the backup"), 1000)[0]
    engine.dispose()
    result = tracker("restore", str(tmp_path / "backup"), "--yes")
    assert result.exit_code == 0, result.output
    assert "1 files copied back, 1 damaged files replaced, 0 already there" in result.output
    assert media.path(centre["photo"]).read_bytes() == b"\xff\xd8 a photo of the plan"
    assert media.path(second).read_bytes() == b"a scanned care plan"
    assert media.path(later).read_bytes() == b"a photo taken after the backup"


def test_a_damaged_file_in_the_store_is_left_out_of_the_backup_and_named(tracker, centre, media, tmp_path):
    """A stored file that no longer matches its name is not backed up; the rest is, and the command says so."""
    media.path(centre["photo"]).write_bytes(b"damaged")
    result = tracker("backup", "--out", str(tmp_path / "backup"))
    assert result.exit_code == 1 and f"were left out of the backup: {centre['photo']}" in result.output
    manifest = manifest_of(tmp_path / "backup")
    assert manifest["media"]["damaged"] == [centre["photo"]] and manifest["media"]["files"] == 0


def test_config_is_restored_only_where_the_instance_has_none(tracker, made, instance, engine):
    """The instance's own config.py is kept (and the output says so); a missing one comes back readable by its
    owner only."""
    (instance / "config.py").write_text("SECRET_KEY = 'a newer key'\n")
    kept = tracker("restore", str(made), "--yes")
    assert "Config: kept the current" in kept.output
    assert (instance / "config.py").read_text() == "SECRET_KEY = 'a newer key'\n"
    (instance / "config.py").unlink()
    engine.dispose()
    restored = tracker("restore", str(made), "--yes")
    assert "Config: config.py restored" in restored.output
    assert (instance / "config.py").read_text() == SECRET and (instance / "config.py").stat().st_mode & 0o777 == 0o600


def test_media_in_s3_are_named_not_copied(tracker, centre, instance, engine, tmp_path):
    """With the media in a bucket, the backup writes no media and its manifest names the bucket."""
    (instance / "config.py").write_text(SECRET + "STORAGE = 's3'\nS3_BUCKET = 'centre-media'\n")
    result = tracker("backup", "--out", str(tmp_path / "backup"))
    assert result.exit_code == 0 and "not included: they stay in the S3 bucket centre-media" in result.output
    assert manifest_of(tmp_path / "backup")["media"] == {"storage": "s3", "bucket": "centre-media", "included": False}
    assert not (tmp_path / "backup" / "media").exists()
    engine.dispose()
    restored = tracker("restore", str(tmp_path / "backup"), "--yes")
    assert "they stay in the S3 bucket centre-media" in restored.output


@pytest.fixture
def older_url(backend, tmp_path, request):
    """A database at an older schema revision (0008), as an older tracker would have left it."""
    if backend == "sqlite":
        url = f"sqlite:///{tmp_path / 'older.db'}"
    else:
        admin = request.getfixturevalue("postgres_template")
        name = f"tracker_older_{os.getpid()}"
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            conn.execute(text(f"CREATE DATABASE {name}"))
        url = admin.url.set(database=name).render_as_string(hide_password=False)
    engine = make_engine(url)
    upgrade(engine, "0008")
    engine.dispose()
    return url


def test_a_backup_from_an_older_tracker_is_migrated_on_restore(tracker, centre, older_url, engine, tmp_path):
    """An older backup replaces the newer database and is brought up to this tracker's schema."""
    assert tracker("backup", "--out", str(tmp_path / "old"), url=older_url).exit_code == 0
    engine.dispose()
    result = tracker("restore", str(tmp_path / "old"), "--yes")
    head = backup.known_revisions()[1]
    assert result.exit_code == 0 and f"revision 0008, migrated to {head}" in result.output, result.output
    assert titles(engine) == set()
    with engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == head


def test_postgresql_client_programs_are_needed_for_postgresql_only(tracker, centre, backend, monkeypatch, tmp_path):
    """Without pg_dump and pg_restore, SQLite is backed up and restored as before; PostgreSQL is refused with the
    package to install, before anything is written or changed."""
    assert tracker("backup", "--out", str(tmp_path / "backup")).exit_code == 0
    monkeypatch.setattr(backup, "CLIENT_FOLDERS", str(tmp_path / "none"))
    monkeypatch.setenv("PATH", str(tmp_path / "none"))
    again = tracker("backup", "--out", str(tmp_path / "again"))
    restored = tracker("restore", str(tmp_path / "backup"), "--yes")
    if backend == "sqlite":
        assert (again.exit_code, restored.exit_code) == (0, 0), again.output + restored.output
        return
    for result, program in ((again, "pg_dump"), (restored, "pg_restore")):
        assert result.exit_code == 1 and f"{program} is not installed" in result.output
        assert "postgresql-client" in result.output
    assert not (tmp_path / "again").exists()
