"""Backing up a centre and restoring it: one consistent moment of the database, the media and the instance
config, with a manifest naming every file by its size and sha256.

Plain functions, no Flask: `backup` writes a backup folder; `plan_restore` checks one without changing anything
and `restore` carries the plan out. Each returns plain data for the command line to print.
"""
import glob
import hashlib
import json
import os
import re
import runpy
import secrets
import shutil
import sqlite3
import subprocess
import tempfile
from collections import Counter
from collections.abc import Iterator
from contextlib import closing, contextmanager, nullcontext
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, func, inspect, select, text
from sqlalchemy.engine import Connection, make_url
from sqlmodel import Session

from . import clock
from .audit import GENESIS, ChainCheck, verify
from .db import MIGRATIONS, make_engine, upgrade
from .errors import Refusal
from .models import (
    Attachment,
    AuditEntry,
    AuditHead,
    Blob,
    Candidate,
    CriterionDecision,
    Evidence,
    EvidenceVersion,
    Signature,
    UnitSignOff,
    User,
)
from .storage import CHUNK, SHA256, LocalStorage, fsync_dir, storage_from_config

FORMAT = 1  # the layout of a backup folder; a tracker refuses a backup in a format it does not read
MANIFEST = "MANIFEST.json"
DUMPS = {"sqlite": "tracker.db", "postgresql": "tracker.pgdump"}
KINDS = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
CONFIG = "config.py"
MEDIA = "media"
COUNTED = (User, Candidate, Evidence, EvidenceVersion, Attachment, Signature, CriterionDecision, UnitSignOff, Blob,
           AuditEntry)
CLIENT_FOLDERS = "/usr/lib/postgresql/*/bin"  # Debian and Ubuntu keep each version's client programs here
LOCK_WAIT_MS = 60_000  # a dump or restore that waits longer than this for a table is stopped, not left hanging
REQUIRED = {"format", "created_at", "database", "alembic_revision", "audit_head", "counts", "media", "files"}


class BackupRefused(Refusal):
    """A backup that cannot be written, or a folder that cannot be restored, with the reason in plain words."""

    def __init__(self, message: str):
        super().__init__("backup_refused", message)


@contextmanager
def _plainly(doing: str) -> Iterator[None]:
    """Report a file or SQLite error as one sentence saying what was being done."""
    try:
        yield
    except OSError as exc:
        where = f" ({exc.filename})" if exc.filename else ""
        raise BackupRefused(f"{doing} failed: {exc.strerror or exc}{where}.") from None
    except sqlite3.Error as exc:
        raise BackupRefused(f"{doing} failed: SQLite said {exc}.") from None


def kind_of(url: str) -> str:
    """Return the kind of database a URL names ("sqlite" or "postgresql"), refusing any other."""
    kind = make_url(url).get_backend_name()
    if kind not in DUMPS:
        raise BackupRefused(f"Only SQLite and PostgreSQL databases can be backed up and restored, not {kind}.")
    return kind


def instance_config(instance: Path) -> dict[str, Any]:
    """Return the settings in the instance's config.py, read as Flask reads them (the upper-case names)."""
    path = instance / CONFIG
    if not path.is_file():
        return {}
    try:
        return {name: value for name, value in runpy.run_path(str(path)).items() if name.isupper()}
    except Exception as exc:  # noqa: BLE001 - any mistake in the file is the administrator's to fix
        raise BackupRefused(f"Cannot read {path}: {exc}.") from None


def _digest(source: Path, copy_to: Path | None = None) -> tuple[str, int]:
    """Read a file once and return its sha256 and size; copy it on the way (synced to disk) when told where."""
    digest, size = hashlib.sha256(), 0
    with open(source, "rb") as src, (open(copy_to, "xb") if copy_to else nullcontext()) as out:
        while chunk := src.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if out:
                out.write(chunk)
        if out:
            out.flush()
            os.fsync(out.fileno())
    return digest.hexdigest(), size


def _entry(folder: Path, relative: str) -> dict[str, Any]:
    """Return a file's line in the manifest."""
    sha256, size = _digest(folder / relative)
    return {"path": relative, "size": size, "sha256": sha256}


def _facts(conn: Connection) -> dict[str, Any]:
    """Read what the manifest says of a database: its schema revision, the audit chain's head and row counts."""
    revision = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
    head = conn.execute(select(AuditHead.seq, AuditHead.hash).where(AuditHead.id == 1)).first()
    counts = {m.__tablename__: conn.execute(select(func.count()).select_from(m)).scalar_one() for m in COUNTED}
    return {"alembic_revision": revision, "audit_head": {"seq": head.seq if head else 0,
                                                         "hash": head.hash if head else GENESIS},
            "counts": counts}


# --- PostgreSQL's client programs -----------------------------------------------------------------------------


def find_tool(name: str) -> Path:
    """Return the newest installed PostgreSQL client program of this name, on the PATH or in CLIENT_FOLDERS."""
    found = {Path(p).resolve(): Path(p) for p in [*glob.glob(f"{CLIENT_FOLDERS}/{name}"), shutil.which(name)] if p}
    if not found:
        raise BackupRefused(f"{name} is not installed: install PostgreSQL's client programs (for example "
                            "`apt-get install postgresql-client`) to back up or restore a PostgreSQL database.")
    return max(found.values(), key=_version)


def _version(program: Path) -> tuple[int, int]:
    """Return the version a PostgreSQL program reports, so the newest can be chosen."""
    try:
        said = subprocess.run([str(program), "--version"], capture_output=True, text=True, timeout=30,
                              check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return (0, 0)
    match = re.search(r"(\d+)(?:\.(\d+))?", said)
    return (int(match[1]), int(match[2] or 0)) if match else (0, 0)


def _run(tool: Path, *args: str, url: str | None = None) -> str:
    """Run a PostgreSQL client program and return its output, or refuse with what it said.

    The database's address goes on the command line without the password, which goes in the environment,
    where `ps` does not show it to other users.
    """
    env = dict(os.environ)
    if url is not None:
        parts = make_url(url)
        address = parts.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
        args = (f"--dbname={address}", *args)
        if parts.password:
            env["PGPASSWORD"] = str(parts.password)
        env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} -c lock_timeout={LOCK_WAIT_MS}".strip()
    result = subprocess.run([str(tool), *args], env=env, capture_output=True, text=True, check=False)
    if result.returncode:
        said = result.stderr.strip() or f"exit status {result.returncode}"
        raise BackupRefused(f"{tool.name} failed: {said}")
    return result.stdout


# --- Backup ---------------------------------------------------------------------------------------------------


def backup(instance: Path, url: str, out: Path) -> dict[str, Any]:
    """Write a consistent backup of the centre into `out`, a new or empty folder; return its manifest."""
    out = Path(os.path.abspath(out))
    kind = kind_of(url)
    tool = find_tool("pg_dump") if kind == "postgresql" else None
    config = instance_config(instance)
    with _plainly(f"Writing the backup to {out}"):
        _check_empty(out)
        out.parent.mkdir(parents=True, exist_ok=True)
        # Written in a private folder beside `out` and renamed at the end: a backup that failed half-way is never
        # found under the name a restore would be given.
        work = Path(tempfile.mkdtemp(prefix=f".{out.name}.partial-", dir=out.parent))
        try:
            manifest = _write(work, instance, url, kind, tool, config)
            os.replace(work, out)
            fsync_dir(out.parent)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return manifest


def _check_empty(out: Path) -> None:
    """Refuse a backup folder that is a file or already holds something."""
    if out.exists() and not out.is_dir():
        raise BackupRefused(f"{out} is a file, not a folder: name a new or empty folder for the backup.")
    if out.is_dir() and any(out.iterdir()):
        raise BackupRefused(f"{out} is not empty: name a new or empty folder, so that no other files are "
                            "mistaken for part of this backup.")


def _write(work: Path, instance: Path, url: str, kind: str, tool: Path | None, config: dict) -> dict[str, Any]:
    """Write the database, media, config and manifest into the work folder; return the manifest."""
    # The database first: a file is stored before any row names it, so media copied afterwards include every
    # file the copied rows name.
    facts = _dump_sqlite(url, work) if kind == "sqlite" else _dump_postgresql(url, work, tool)
    media, files = _back_up_media(config, instance, work)
    files += [_entry(work, DUMPS[kind]), *_back_up_config(instance, work)]
    manifest = {"format": FORMAT, "created_at": clock.now().isoformat(timespec="seconds"),
                "tracker_version": _tracker_version(), "database": kind, **facts, "media": media,
                "config_included": any(f["path"] == CONFIG for f in files),
                "files": sorted(files, key=lambda f: f["path"])}
    with open(work / MANIFEST, "w", encoding="utf-8") as stream:
        json.dump(manifest, stream, indent=2)
        stream.flush()
        os.fsync(stream.fileno())
    fsync_dir(work)
    return manifest


def _tracker_version() -> str:
    """Return the installed tracker's version."""
    try:
        return metadata.version("portfolio-tracker")
    except metadata.PackageNotFoundError:
        return "unknown"


def _sqlite_path(url: str) -> Path:
    """Return the file an SQLite URL names."""
    return Path(make_url(url).database or "").absolute()


def _dump_sqlite(url: str, work: Path) -> dict[str, Any]:
    """Copy the live SQLite database with its online backup API (never the file: WAL); return its facts."""
    source, target = _sqlite_path(url), work / DUMPS["sqlite"]
    if not source.is_file():
        raise BackupRefused(f"There is no database at {source}: run `tracker init` first.")
    with closing(sqlite3.connect(source, timeout=30)) as live, closing(sqlite3.connect(target)) as copy:
        live.backup(copy)  # in one step: a single read of one moment, while writers carry on
        copy.execute("PRAGMA journal_mode=DELETE")  # the copy stands alone, with no -wal file beside it
        check = copy.execute("PRAGMA quick_check").fetchone()[0]
    if check != "ok":
        raise BackupRefused(f"The copy of the database failed SQLite's check ({check}); the backup was not written.")
    engine = create_engine(f"sqlite:///{target}")  # without the tracker's pragmas: reading must not make it WAL
    try:
        with engine.connect() as conn:
            return _facts(conn)
    finally:
        engine.dispose()


def _dump_postgresql(url: str, work: Path, tool: Path) -> dict[str, Any]:
    """Dump the database with pg_dump; return its facts, read from the very snapshot pg_dump copies."""
    engine = make_engine(url)
    try:
        with engine.connect().execution_options(isolation_level="REPEATABLE READ") as conn:
            snapshot = conn.execute(text("SELECT pg_export_snapshot()")).scalar_one()
            _run(tool, "--format=custom", f"--file={work / DUMPS['postgresql']}", f"--snapshot={snapshot}",
                 f"--lock-wait-timeout={LOCK_WAIT_MS}", url=url)
            return _facts(conn)
    finally:
        engine.dispose()


def _media_store(config: dict, instance: Path) -> LocalStorage | str:
    """Return the local media store, or the name of the S3 bucket the media live in."""
    if (config.get("STORAGE") or "local").lower() == "s3":
        return config.get("S3_BUCKET") or "(S3_BUCKET is not set)"
    try:
        return storage_from_config(config, instance)
    except ValueError as exc:
        raise BackupRefused(f"The instance config is wrong: {exc}.") from None


def _stored(root: Path) -> list[Path]:
    """Return the files of a media folder named by their sha256 (ab/cd/<sha256>); unfinished uploads are not."""
    return sorted(p for p in root.glob("??/??/*") if SHA256.match(p.name) and p.is_file()
                  and p.parent.name == p.name[2:4] and p.parent.parent.name == p.name[:2])


def _back_up_media(config: dict, instance: Path, work: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Copy the local media folder, each file checked against its name; or record the bucket the media live in."""
    store = _media_store(config, instance)
    if isinstance(store, str):
        return {"storage": "s3", "bucket": store, "included": False}, []
    files, damaged = [], []
    for source in _stored(store.root):
        relative = f"{MEDIA}/{source.relative_to(store.root).as_posix()}"
        (work / relative).parent.mkdir(parents=True, exist_ok=True)
        sha256, size = _digest(source, work / relative)
        if sha256 == source.name:
            files.append({"path": relative, "size": size, "sha256": sha256})
        else:  # the stored copy is damaged: a backup of it would restore the damage
            (work / relative).unlink()
            damaged.append(source.name)
    summary = {"storage": "local", "included": True, "files": len(files), "bytes": sum(f["size"] for f in files),
               "damaged": damaged}
    return summary, files


def _back_up_config(instance: Path, work: Path) -> list[dict[str, Any]]:
    """Copy the instance config (it holds the secret key) readable by its owner only."""
    if not (instance / CONFIG).is_file():
        return []
    _digest(instance / CONFIG, work / CONFIG)
    (work / CONFIG).chmod(0o600)
    return [_entry(work, CONFIG)]


# --- Restore --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RestorePlan:
    """A backup checked and found fit to restore into this instance and database."""

    folder: Path
    manifest: dict[str, Any]
    instance: Path
    url: str


@dataclass(frozen=True)
class RestoreReport:
    """What a restore did: the schema it brought back and migrated, the media and config, the chain's state."""

    revision: str
    upgraded_to: str
    media: dict[str, Any]
    config: str  # "restored", "kept" (the instance has its own) or "absent" (the backup has none)
    chain: ChainCheck
    head_matches: bool  # the restored audit head is the one the manifest recorded
    counts: dict[str, int]


def read_backup(folder: Path) -> dict[str, Any]:
    """Return a backup folder's manifest once every file it lists is there with its size and sha256."""
    folder = Path(folder)
    with _plainly(f"Reading the backup in {folder}"):
        if not folder.exists():
            raise BackupRefused(f"There is no backup at {folder}.")
        if not folder.is_dir():
            raise BackupRefused(f"{folder} is a file, not a backup folder.")
        manifest = _read_manifest(folder)
        for listed in manifest["files"]:
            path = _inside(folder, listed["path"])
            if not path.is_file():
                raise BackupRefused(f"The backup is incomplete: {listed['path']} is missing. Nothing was restored.")
            if _digest(path) != (listed["sha256"], listed["size"]):
                raise BackupRefused(f"The backup has been changed or damaged: {listed['path']} does not match its "
                                    f"sha256 in {MANIFEST}. Nothing was restored.")
    return manifest


def _read_manifest(folder: Path) -> dict[str, Any]:
    """Read and check the shape of a backup's manifest."""
    path = folder / MANIFEST
    if not path.is_file():
        raise BackupRefused(f"{folder} is not a backup made by `tracker backup` (it has no {MANIFEST}).")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        manifest = None
    if not (isinstance(manifest, dict) and REQUIRED <= manifest.keys() and isinstance(manifest["files"], list)
            and all(_well_formed(f) for f in manifest["files"])
            and all(isinstance(manifest[key], dict) for key in ("audit_head", "counts", "media"))):
        raise BackupRefused(f"{path} is not a manifest written by `tracker backup`.")
    if manifest["format"] != FORMAT:
        raise BackupRefused(f"This backup's format ({manifest['format']}) is not one this tracker reads "
                            f"(format {FORMAT}): restore it with the version of the tracker that made it.")
    return manifest


def _well_formed(listed: Any) -> bool:
    """Say whether a manifest's file line has a path, a size and a sha256."""
    return (isinstance(listed, dict) and isinstance(listed.get("path"), str) and isinstance(listed.get("size"), int)
            and isinstance(listed.get("sha256"), str))


def _inside(folder: Path, relative: str) -> Path:
    """Return a listed file's path, refusing one that points outside the backup folder."""
    path = (folder / relative).resolve()
    if Path(relative).is_absolute() or not path.is_relative_to(folder.resolve()):
        raise BackupRefused(f"The manifest names a file outside the backup folder ({relative}).")
    return path


def known_revisions() -> tuple[set[str], str]:
    """Return the schema revisions this tracker's migrations know, and the newest."""
    script = ScriptDirectory(str(MIGRATIONS))
    return {s.revision for s in script.walk_revisions()}, script.get_current_head()


def plan_restore(instance: Path, url: str, folder: Path) -> RestorePlan:
    """Check that a backup can be restored here, changing nothing: whole, the same kind of database, not newer."""
    manifest = read_backup(folder)
    kind, theirs = kind_of(url), manifest["database"]
    if theirs != kind:
        raise BackupRefused(f"This is a backup of a {KINDS.get(theirs, theirs)} database, but this tracker uses "
                            f"{KINDS.get(kind, kind)} (see DATABASE_URL): restore it into the same kind of database.")
    known, head = known_revisions()
    if manifest["alembic_revision"] not in known:
        raise BackupRefused(f"This backup was made by a newer version of the tracker (database revision "
                            f"{manifest['alembic_revision']}; this one knows revisions up to {head}): "
                            "upgrade the tracker, then restore.")
    if _listed(manifest, DUMPS[kind]) is None:
        raise BackupRefused(f"The backup lists no database file ({DUMPS[kind]}): it cannot be restored.")
    if kind == "postgresql":
        find_tool("pg_restore")
    return RestorePlan(Path(folder), manifest, Path(instance), url)


def restore(plan: RestorePlan) -> RestoreReport:
    """Replace the database with the backup's, bring back config and missing media, migrate, and check the chain."""
    with _plainly(f"Restoring from {plan.folder}"):
        if plan.manifest["database"] == "sqlite":
            _restore_sqlite(plan)
        else:
            _restore_postgresql(plan)
        config = _restore_config(plan)  # before the media: the config says where they are kept
        media = _restore_media(plan)
    engine = make_engine(plan.url)
    try:
        upgrade(engine)  # a backup made by an older tracker is brought up to this one's schema
        with Session(engine) as session:
            chain = verify(session)
        with engine.connect() as conn:
            facts = _facts(conn)
    finally:
        engine.dispose()
    return RestoreReport(plan.manifest["alembic_revision"], facts["alembic_revision"], media, config, chain,
                         facts["audit_head"] == plan.manifest["audit_head"], facts["counts"])


def _listed(manifest: dict[str, Any], relative: str) -> dict[str, Any] | None:
    """Return the manifest's line for a file of the backup, if it lists one."""
    return next((f for f in manifest["files"] if f["path"] == relative), None)


def _copy_back(plan: RestorePlan, listed: dict[str, Any], target: Path) -> None:
    """Copy a file of the backup to a new path, refusing it if it changed since the backup was checked."""
    if _digest(plan.folder / listed["path"], target)[0] != listed["sha256"]:
        target.unlink()
        raise BackupRefused(f"{listed['path']} changed while it was being restored; check the backup and run the "
                            "restore again.")


def _restore_sqlite(plan: RestorePlan) -> None:
    """Write the backup's database beside the configured one and put it in its place in one rename."""
    target = _sqlite_path(plan.url)
    target.parent.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{target.name}.restore-{secrets.token_hex(4)}")
    try:
        _copy_back(plan, _listed(plan.manifest, DUMPS["sqlite"]), staged)
        _empty_wal(target)
        os.replace(staged, target)
        for suffix in ("-wal", "-shm"):  # they belonged to the replaced file
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        fsync_dir(target.parent)
    finally:
        staged.unlink(missing_ok=True)


def _empty_wal(target: Path) -> None:
    """Write the live database's -wal back into it, so no page of the old file waits there to be replayed."""
    if not target.is_file():
        return
    try:
        with closing(sqlite3.connect(target, timeout=30)) as live:
            live.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.DatabaseError:
        pass  # a damaged database is being replaced anyway


def _restore_postgresql(plan: RestorePlan) -> None:
    """Restore the dump into the configured database with pg_restore, in one transaction."""
    tool = find_tool("pg_restore")
    engine = make_engine(plan.url)
    try:
        with engine.begin() as conn:
            # --clean drops the objects the dump holds, as the dump has them: the tables and constraints of
            # another schema revision would survive it and block it, so they are all dropped first.
            if _revision(conn) not in (None, plan.manifest["alembic_revision"]):
                _drop_everything(conn)
    finally:
        engine.dispose()
    _run(tool, "--clean", "--if-exists", "--no-owner", "--no-acl", "--single-transaction", "--exit-on-error",
         str(plan.folder / DUMPS["postgresql"]), url=plan.url)


def _revision(conn: Connection) -> str | None:
    """Return a database's schema revision, or None before its first migration."""
    if not inspect(conn).has_table("alembic_version"):
        return None
    return conn.execute(text("SELECT version_num FROM alembic_version")).scalar()


# The public schema's tables, views, sequences and functions, leaving out those an extension owns.
OBJECTS = text("""
    SELECT CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW' WHEN 'S' THEN 'SEQUENCE'
           ELSE 'TABLE' END, c.oid::regclass::text
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm', 'S')
      AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = c.oid AND d.deptype = 'e')
    UNION ALL
    SELECT 'FUNCTION', p.oid::regprocedure::text
    FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
    WHERE n.nspname = 'public' AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.objid = p.oid AND d.deptype = 'e')
""")


def _drop_everything(conn: Connection) -> None:
    """Drop every object of the tracker's schema, waiting a bounded time for a running tracker's locks."""
    conn.execute(text(f"SET LOCAL lock_timeout = {LOCK_WAIT_MS}"))
    for kind, name in conn.execute(OBJECTS).all():
        conn.execute(text(f"DROP {kind} IF EXISTS {name} CASCADE"))  # a table's sequences go with it


def _restore_config(plan: RestorePlan) -> str:
    """Bring back config.py (readable by its owner only) unless the instance has its own, which is kept."""
    listed = _listed(plan.manifest, CONFIG)
    target = plan.instance / CONFIG
    if listed is None:
        return "absent"
    if target.exists():
        return "kept"
    plan.instance.mkdir(parents=True, exist_ok=True)
    staged = target.with_name(f".{CONFIG}.restore-{secrets.token_hex(4)}")
    try:
        _copy_back(plan, listed, staged)
        staged.chmod(0o600)
        os.replace(staged, target)
    finally:
        staged.unlink(missing_ok=True)
    return "restored"


def _restore_media(plan: RestorePlan) -> dict[str, Any]:
    """Copy back each backed-up file the store lacks or holds damaged; files added since the backup stay."""
    media = plan.manifest["media"] | {"copied": 0, "replaced": 0, "present": 0}
    listed = [f for f in plan.manifest["files"] if f["path"].startswith(f"{MEDIA}/")]
    if not listed:
        return media
    store = storage_from_config(instance_config(plan.instance), plan.instance)
    counts = Counter()
    for entry in listed:
        state = _state(store, entry["sha256"])
        if state != "present":
            _put_back(plan, store, entry)
        counts[{"present": "present", "missing": "copied", "damaged": "replaced"}[state]] += 1
    return media | counts


def _state(store: Any, sha256: str) -> str:
    """Say whether a store holds a file whole ("present"), not at all ("missing") or damaged (local stores only)."""
    if not store.exists(sha256):
        return "missing"
    if isinstance(store, LocalStorage) and _digest(store.path(sha256))[0] != sha256:
        return "damaged"
    return "present"


def _put_back(plan: RestorePlan, store: Any, listed: dict[str, Any]) -> None:
    """Store a file of the backup under its hash, in place of any damaged copy."""
    store.spool_dir.mkdir(parents=True, exist_ok=True)
    staged = store.spool_dir / f"restore-{secrets.token_hex(8)}"
    try:
        _copy_back(plan, listed, staged)
        if isinstance(store, LocalStorage):
            store.path(listed["sha256"]).unlink(missing_ok=True)  # put_file keeps a file already in place
        store.put_file(staged, listed["sha256"])
    finally:
        staged.unlink(missing_ok=True)
