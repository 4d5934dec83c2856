"""Field sync cost: a big push over HTTP against a floor, a sync with nothing to do, and a large video in parts.

1. 10,000 pieces of evidence (each mapped to two criteria) recorded on a device, then pushed to a centre served
   by `tracker serve` on 127.0.0.1: records per second, requests made, bytes sent. The floor is the rows that push
   wrote (evidence, versions, criterion links, audit entries, receipts) inserted directly into a fresh copy of the
   centre's database, a batch at a time, one commit per batch (goal: at least 0.5 of the floor). For reference,
   the same payloads saved one at a time through the evidence service in this process (the rules and the audit
   chain, no HTTP, as a web form saves them) are printed too, and so is the bound on the ratio set by the work
   each record needs however it is stored: the JSON each way, reading its envelope and its evidence, the hash of
   the item and of the version, and its link in the audit chain, timed alone in this process.
2. A sync with nothing to do: requests each way and bytes (goal: one request each way, under 1 KB).
3. A 200 MB video uploaded in parts: the device's peak Python memory during the upload, and the centre's peak
   resident memory before and after it (flat: the parts are streamed, never held whole).

Run: python bench/sync.py [--records N] [--video-mb N] [--batch N]
"""
import argparse
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from datetime import date, timedelta
from pathlib import Path

from sqlmodel import Session, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sync.device.client import BATCH, Client, HttpTransport  # noqa: E402
from sync.device.field import database_engine, enrol  # noqa: E402
from tracker.audit import SYSTEM, Actor  # noqa: E402
from tracker.db import make_engine, transaction, upgrade  # noqa: E402
from tracker.models import OutboxItem, Role, User  # noqa: E402
from tracker.services import evidence, people  # noqa: E402
from tracker.specpacks import loader  # noqa: E402
from tracker.storage import LocalStorage  # noqa: E402

PASSWORD = "a long bench password"
TODAY = date.today()
MB = 1024 * 1024


class Counting:
    """A transport that counts requests and bytes each way."""

    def __init__(self, inner):  # noqa: ANN001
        self.inner, self.requests, self.sent, self.received = inner, 0, 0, 0

    def __call__(self, method, path, *, query=None, body=None, headers=None):  # noqa: ANN001, ANN204
        """Send, counting the request line, headers and body, and the answer's body."""
        self.requests += 1
        self.sent += len(method) + len(path) + len(str(query or "")) + len(body or b"") + sum(
            len(k) + len(v) + 4 for k, v in (headers or {}).items())
        answer = self.inner(method, path, query=query, body=body, headers=headers)
        self.received += len(answer.body) + sum(len(k) + len(v) + 4 for k, v in answer.headers.items())
        return answer

    def reset(self) -> None:
        """Start counting again."""
        self.requests = self.sent = self.received = 0


def seed_centre(path: Path) -> dict:
    """Make a centre database with the bundled pack, an eligible assessor and a candidate."""
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    with transaction(engine) as session:
        for document in loader.bundled():
            loader.load(session, document)
        admin = people.create_user(session, SYSTEM, {"email": "admin@bench.test", "name": "Ada Admin",
                                                     "password": PASSWORD, "roles": [Role.ADMINISTRATOR]})
        actor = Actor(admin, today=TODAY)
        assessor = people.create_user(session, actor, {"email": "ann@bench.test", "name": "Ann Assessor",
                                                       "password": PASSWORD, "roles": [Role.ASSESSOR]})
        since = TODAY - timedelta(days=1000)
        people.add_assessor_qualification(session, actor, {"user_id": assessor.id, "qualification_code": "A1",
                                                           "awarded_on": since, "verified_on": since})
        people.record_competence(session, actor, {"user_id": assessor.id, "level": "competent",
                                                  "area": "Adult social care", "evidence": "Registered manager",
                                                  "verified_on": since})
        cand_user = people.create_user(session, actor, {"email": "cara@bench.test", "name": "Cara Candidate",
                                                        "password": PASSWORD, "roles": []})
        candidate = people.register_candidate(session, actor, {
            "user_id": cand_user.id, "qualification": "3085-02", "registration_number": "CG000001",
            "date_of_birth": date(1990, 5, 17), "registration_date": TODAY - timedelta(days=365),
            "workplace": "Meadow View", "work_setting": "long_term_care", "assessor_ids": [assessor.id]})
        ids = {"assessor": assessor.id, "candidate": candidate.id}
    engine.dispose()
    return ids


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(instance: Path, port: int) -> subprocess.Popen:
    """Start the centre with `tracker serve` and wait until it answers."""
    import urllib.request

    tracker = Path(sys.executable).parent / "tracker"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TRACKER_INSTANCE")}
    process = subprocess.Popen([str(tracker), "--instance", str(instance), "serve", "--port", str(port),
                                "--threads", "4"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(300):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/auth/login", timeout=1)
            return process
        except OSError:
            time.sleep(0.1)
    process.kill()
    raise SystemExit("the centre did not start")


def peak_rss(pid: int) -> int:
    """Return a process's peak resident memory (VmHWM) in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0


def payload(ids: dict, n: int) -> dict:
    return {"candidate_id": ids["candidate"], "unit": "002", "method": "observation", "title": f"Visit {n}",
            "activity_date": TODAY - timedelta(days=5), "setting": "long_term_care",
            "narrative": "Supported Mrs B to plan her week with a relationship circle, keeping her in control.",
            "criteria": [{"code": "2.1", "note": "Good days and bad days"}, {"code": "2.2", "note": "Her words"}],
            "submit": True}


def queue_on_device(engine, ids: dict, records: int) -> float:  # noqa: ANN001
    """Queue the evidence in the device's outbox as the outbox hook does, without the device-side service cost."""
    from sync.device import outbox
    from tracker.hashing import canonical_json
    from tracker.models import new_id

    started = time.perf_counter()
    with transaction(engine) as session:
        seq = outbox.next_seq(session)
        for n in range(records):
            data = json.loads(canonical_json(payload(ids, n) | {"id": new_id(), "signatures": []}))
            session.add(OutboxItem(item_id=new_id(), seq=seq + n, kind="evidence.capture", payload=data,
                                   evidence_id=uuid.UUID(data["id"])))
    return time.perf_counter() - started


def record_on_device(engine, ids: dict, records: int) -> float:  # noqa: ANN001
    """Record the evidence on the device through the service (each queued by the outbox); return seconds."""
    started = time.perf_counter()
    for start in range(0, records, 500):
        with transaction(engine) as session:
            actor = Actor(session.get(User, ids["assessor"]), today=TODAY)
            for n in range(start, min(records, start + 500)):
                evidence.capture(session, actor, payload(ids, n))
    return time.perf_counter() - started


WRITTEN = ("evidence", "evidenceversion", "evidencecriterion", "auditentry", "syncreceipt")


def counts(db: Path) -> dict[str, int]:
    """Return how many rows each of the tables a push writes holds."""
    engine = make_engine(f"sqlite:///{db}")
    with engine.connect() as conn:
        found = {t: conn.exec_driver_sql(f"SELECT count(*) FROM {t}").scalar() for t in ("device", *WRITTEN)}
    engine.dispose()
    return found


def floor(template: Path, centre_db: Path, before: dict[str, int], work: Path, records: int, batch: int) -> float:
    """Insert the rows the push wrote, exactly as stored, into a fresh centre database a batch at a time (one
    executemany per table and one commit per batch); return records/s."""
    before = before | {"device": counts(template)["device"]}  # every device enrolled since the template
    centre = make_engine(f"sqlite:///{centre_db}")
    rows, columns = {}, {}
    with centre.connect() as conn:
        for t in ("device", *WRITTEN):  # the enrolled device first: the receipts name it
            result = conn.exec_driver_sql(f"SELECT * FROM {t} ORDER BY rowid LIMIT -1 OFFSET {before[t]}")
            columns[t], rows[t] = list(result.keys()), [tuple(r) for r in result]
    centre.dispose()
    path = work / "floor-rows.db"
    shutil.copy(template, path)
    engine = make_engine(f"sqlite:///{path}")
    with engine.begin() as conn:
        _insert(conn, "device", columns["device"], rows["device"])
    batches = -(-records // batch)
    started = time.perf_counter()
    for b in range(batches):
        with engine.begin() as conn:
            for t in WRITTEN:
                part = rows[t][len(rows[t]) * b // batches:len(rows[t]) * (b + 1) // batches]
                _insert(conn, t, columns[t], part)
    seconds = time.perf_counter() - started
    engine.dispose()
    return records / seconds


def _insert(conn, table: str, columns: list[str], rows: list[tuple]) -> None:  # noqa: ANN001
    """Insert rows exactly as stored, in one executemany."""
    if rows:
        conn.exec_driver_sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                             rows)


def service_rate(template: Path, work: Path, engine_of_device, ids: dict, batch: int) -> float:  # noqa: ANN001
    """Apply the same payloads through the evidence service into a fresh centre database; return records/s."""
    path = work / "floor.db"
    shutil.copy(template, path)
    engine = make_engine(f"sqlite:///{path}")
    with Session(engine_of_device) as session:
        payloads = [i.payload for i in session.exec(select(OutboxItem).order_by(OutboxItem.seq))]
    started = time.perf_counter()
    for start in range(0, len(payloads), batch):
        with transaction(engine) as session:
            actor = Actor(session.get(User, ids["assessor"]), today=TODAY)
            for data in payloads[start:start + batch]:
                evidence.capture(session, actor, data)
    seconds = time.perf_counter() - started
    engine.dispose()
    return len(payloads) / seconds


def required_work(engine_of_device, ids: dict, template: Path) -> float:  # noqa: ANN001
    """Time, per record, the work a push cannot skip however its rows are written: the item as JSON each way, its
    envelope and evidence read, the item's and the version's hashes, and the audit entry that chains it."""
    from sync.centre.push import _parse
    from tracker.audit import _entry
    from tracker.hashing import content_hash
    from tracker.models import Candidate, Unit
    from tracker.services import validate

    centre = make_engine(f"sqlite:///{template}")
    with Session(centre) as session:
        candidate = session.get(Candidate, ids["candidate"])
        unit = session.exec(select(Unit).where(Unit.code == "002")).first()
        actor = Actor(session.get(User, ids["assessor"]), device_id=uuid.uuid4())
        session.expunge_all()
    centre.dispose()
    with Session(engine_of_device) as session:
        items = [{"item_id": str(i.item_id), "seq": i.seq, "kind": i.kind, "payload": i.payload}
                 for i in session.exec(select(OutboxItem).order_by(OutboxItem.seq))]
    started = time.perf_counter()
    prev = "0" * 64
    for n, raw in enumerate(items, start=1):
        item = _parse(json.loads(json.dumps(raw)))
        data = validate(evidence.EvidenceIn, item.payload)
        digest = content_hash(evidence.version_content(candidate, unit, data.method, data))
        prev = _entry(actor, "evidence.captured", "evidence", data.id, candidate.id, {
            "method": data.method, "status": "submitted", "version": str(uuid.uuid4()), "content_hash": digest,
            "candidate": str(candidate.id)}, n, prev)["hash"]
    return (time.perf_counter() - started) / len(items)


def make_video(storage: LocalStorage, work: Path, size: int) -> str:
    """Write a large MP4-looking file into the device's storage; return its sha256."""
    path = work / "video.mp4"
    digest = hashlib.sha256()
    head = b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom"
    block = bytes(MB)
    with path.open("wb") as out:
        out.write(head)
        digest.update(head)
        left = size - len(head)
        while left > 0:
            chunk = block[:min(left, MB)]
            out.write(chunk)
            digest.update(chunk)
            left -= len(chunk)
    sha = digest.hexdigest()
    storage.put_file(path, sha)
    return sha


def main() -> None:
    """Run the three measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--video-mb", type=int, default=200)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--record-on-device", action="store_true",
                        help="record each piece through the device's own service and outbox hook (slower set-up)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    try:
        template = work / "template.db"
        ids = seed_centre(template)
        centre_dir = work / "centre"
        centre_dir.mkdir()
        shutil.copy(template, centre_dir / "tracker.db")
        port = free_port()
        centre = serve(centre_dir, port)
        try:
            run(args, work, template, ids, centre, f"http://127.0.0.1:{port}", centre_dir / "tracker.db")
        finally:
            centre.terminate()
            centre.wait(20)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path, template: Path, ids: dict, centre: subprocess.Popen, url: str,  # noqa: ANN001
        centre_db: Path) -> None:
    device_dir = work / "device"
    device_dir.mkdir()
    engine = database_engine(f"sqlite:///{device_dir / 'tracker.db'}")
    storage = LocalStorage(device_dir / "media")
    transport = Counting(HttpTransport(url, timeout=120))
    enrol(engine, device_dir, url, "ann@bench.test", PASSWORD, "Bench tablet", transport=transport,
          storage=storage)
    if args.record_on_device:
        recorded = record_on_device(engine, ids, args.records)
        print(f"recorded on the device: {args.records} pieces of evidence in {recorded:.1f} s (each queued)")
    else:
        recorded = queue_on_device(engine, ids, args.records)
        print(f"queued on the device: {args.records} evidence.capture items in {recorded:.1f} s")

    token = (device_dir / "device_token").read_text()
    client = Client(engine, storage, transport, token, batch=args.batch)
    before = counts(centre_db)
    transport.reset()
    started = time.perf_counter()
    client.push()
    seconds = time.perf_counter() - started
    rate = client.report.pushed / seconds
    print(f"push over HTTP: {client.report.pushed} records in {seconds:.1f} s = {rate:.0f} records/s; "
          f"{transport.requests} requests; {transport.sent / MB:.1f} MB sent, {transport.received / MB:.2f} MB "
          f"received (batch {args.batch})")
    floor_rate = floor(template, centre_db, before, work, client.report.pushed, args.batch)
    print(f"floor (the same rows inserted directly into a fresh centre database, batch {args.batch}): "
          f"{floor_rate:.0f} records/s")
    print(f"ratio to the floor: {rate / floor_rate:.3f} (goal >= 0.5)")
    needed, inserted = required_work(engine, ids, template), 1 / floor_rate
    print(f"work each record needs however it is stored (JSON each way, envelope and evidence read, item and version "
          f"hashes, audit chain entry), timed alone: {needed * 1e6:.0f} us; the floor's whole insert: "
          f"{inserted * 1e6:.0f} us; so even with nothing else a push reaches at most {inserted / (inserted + needed):.2f}"
          f" of the floor")
    through_service = service_rate(template, work, engine, ids, args.batch)
    print(f"for reference, the same payloads saved one at a time through the evidence service in-process, as a web "
          f"form saves them (rules, audit chain, no HTTP): {through_service:.0f} records/s; push over HTTP, which "
          f"checks each item with the same rules and writes a run of new evidence together, is "
          f"{rate / through_service:.1f} times that")

    client.sync()  # settle the pull after the big push
    transport.reset()
    client = Client(engine, storage, transport, token, batch=args.batch)
    report = client.sync()
    print(f"sync with nothing to do: {transport.requests} request(s) (push: 0, pull: {transport.requests}), "
          f"{transport.sent} bytes sent, {transport.received} bytes received, ok={report.ok} (goal: one request "
          f"each way, under 1 KB)")

    sha = make_video(storage, work, args.video_mb * MB)
    before = peak_rss(centre.pid)
    transport.reset()
    tracemalloc.start()
    started = time.perf_counter()
    client._upload_one(sha)
    seconds = time.perf_counter() - started
    _, device_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    after = peak_rss(centre.pid)
    print(f"video upload: {args.video_mb} MB in {transport.requests} requests, {seconds:.1f} s; device peak Python "
          f"memory during the upload {device_peak / MB:.1f} MB; centre peak RSS {before / MB:.0f} MB before, "
          f"{after / MB:.0f} MB after")


if __name__ == "__main__":
    main()
