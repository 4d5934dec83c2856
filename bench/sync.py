"""Field sync cost: a big push against PouchDB's replication in the same run, a sync with nothing to do, a video.

1. 10,000 pieces of evidence (each mapped to two criteria) queued on a device, then pushed to a centre served by
   `tracker serve` on 127.0.0.1: records per second, requests, bytes. The peer is the system users would otherwise
   pick: PouchDB replicating the same number of documents to a CouchDB-compatible server (express-pouchdb) on the
   same machine (`../shared/peers/pouchdb/`, `node bench.js N`), run from a scratch copy after `npm ci`. Ours and
   the peer take turns three times (the machine is shared, so only figures from the same run compare); the medians
   and their ratio, ours / PouchDB's default batch size, are printed (goal: at least 1.0). Without node and npm,
   the command that runs the peer is printed instead, with our figures.
2. A sync with nothing to do: requests each way and bytes (goal: one request each way, under 1 KB), beside
   PouchDB's no-op replication.
3. A 200 MB video uploaded in parts: the device's peak Python memory during the upload, and the centre's peak
   resident memory before and after it (flat: the parts are streamed, never held whole).

Run: python bench/sync.py [--records N] [--rounds N] [--video-mb N] [--batch N] [--peer DIR]
"""
import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sync.device.client import BATCH, Client, HttpTransport  # noqa: E402
from sync.device.field import database_engine, enrol  # noqa: E402
from tracker import clock  # noqa: E402
from tracker.audit import SYSTEM, Actor  # noqa: E402
from tracker.db import make_engine, transaction, upgrade  # noqa: E402
from tracker.models import OutboxItem, Role, User  # noqa: E402
from tracker.services import evidence, people  # noqa: E402
from tracker.specpacks import loader  # noqa: E402
from tracker.storage import LocalStorage  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PEER = ROOT.parent / "shared" / "peers" / "pouchdb"
PASSWORD = "a long bench password"
TODAY = clock.today()
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


# --- The peer: PouchDB replicating to express-pouchdb --------------------------------------------------------


def prepare_peer(source: Path) -> Path | str:
    """Copy the peer to a scratch folder (the shared one is never touched) and `npm ci` there once; return the
    folder, or why the peer cannot run."""
    if not (source / "bench.js").is_file():
        return f"no peer benchmark at {source}"
    if shutil.which("node") is None or shutil.which("npm") is None:
        return "node and npm are not installed"
    scratch = Path(tempfile.gettempdir()) / "tracker-bench-pouchdb"
    lock = (source / "package-lock.json").read_bytes()
    fresh = not (scratch / "node_modules").is_dir() or (scratch / "package-lock.json").read_bytes() != lock
    scratch.mkdir(exist_ok=True)
    for name in ("bench.js", "server.js", "package.json", "package-lock.json"):
        shutil.copy(source / name, scratch / name)
    if fresh:
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=scratch, capture_output=True, text=True,
                              check=False)
        if done.returncode != 0:
            return f"npm ci failed: {done.stderr.strip().splitlines()[-1:]}"
    return scratch


def run_peer(folder: Path, records: int) -> dict[str, str] | str:
    """Run the peer's benchmark once; return its `key: value` lines, or why it failed."""
    done = subprocess.run(["node", "bench.js", str(records)], cwd=folder, capture_output=True, text=True, timeout=1800,
                          check=False)
    if done.returncode != 0:
        return f"node bench.js failed: {done.stderr.strip().splitlines()[-1:]}"
    return dict(line.split(": ", 1) for line in done.stdout.splitlines() if ": " in line)


def peer_line(figures: dict[str, str]) -> str:
    return (f"PouchDB replicate: {figures['pouchdb_docs_per_s']} docs/s (batch_size 100, its default), "
            f"{figures['pouchdb_docs_per_s_b500']} docs/s (batch_size 500); {figures['default_http_requests']} "
            f"requests; {int(figures['default_request_bytes']) / MB:.1f} MB sent, "
            f"{int(figures['default_response_bytes']) / MB:.2f} MB received")


# --- Ours ----------------------------------------------------------------------------------------------------


class Round:
    """A fresh centre served over HTTP and a freshly enrolled device with the evidence queued."""

    def __init__(self, args, work: Path, template: Path, ids: dict, n: int):  # noqa: ANN001
        self.args, self.ids = args, ids
        centre_dir, device_dir = work / f"centre-{n}", work / f"device-{n}"
        centre_dir.mkdir()
        device_dir.mkdir()
        shutil.copy(template, centre_dir / "tracker.db")
        port = free_port()
        self.url, self.centre = f"http://127.0.0.1:{port}", serve(centre_dir, port)
        self.engine = database_engine(f"sqlite:///{device_dir / 'tracker.db'}")
        self.storage = LocalStorage(device_dir / "media")
        self.transport = Counting(HttpTransport(self.url, timeout=120))
        self.work = work
        enrol(self.engine, device_dir, self.url, "ann@bench.test", PASSWORD, "Bench tablet",
              transport=self.transport, storage=self.storage)
        self.token = (device_dir / "device_token").read_text()

    def close(self) -> None:
        """Stop the centre."""
        self.centre.terminate()
        self.centre.wait(20)
        self.engine.dispose()

    def client(self) -> Client:
        return Client(self.engine, self.storage, self.transport, self.token, batch=self.args.batch)

    def push(self) -> tuple[float, str]:
        """Queue the evidence and push it all; return records/s and a line describing the push."""
        if self.args.record_on_device:
            record_on_device(self.engine, self.ids, self.args.records)
        else:
            queue_on_device(self.engine, self.ids, self.args.records)
        client = self.client()
        self.transport.reset()
        started = time.perf_counter()
        client.push()
        seconds = time.perf_counter() - started
        rate = client.report.pushed / seconds
        return rate, (f"our push over HTTP: {client.report.pushed} records in {seconds:.1f} s = {rate:.0f} records/s;"
                      f" {self.transport.requests} requests; {self.transport.sent / MB:.1f} MB sent, "
                      f"{self.transport.received / MB:.2f} MB received (batch {self.args.batch})")

    def noop(self) -> tuple[int, int, int, bool]:
        """Sync once to settle the pull after the push, then once with nothing to do; return what the second
        cost: requests, bytes sent and received, and whether it was ok."""
        self.client().sync()
        self.transport.reset()
        report = self.client().sync()
        return self.transport.requests, self.transport.sent, self.transport.received, report.ok

    def video(self, size: int) -> str:
        """Upload a video in parts; return a line with the memory it took on each side."""
        sha = make_video(self.storage, self.work, size)
        before = peak_rss(self.centre.pid)
        self.transport.reset()
        tracemalloc.start()
        started = time.perf_counter()
        self.client()._upload_one(sha)
        seconds = time.perf_counter() - started
        _, device_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        after = peak_rss(self.centre.pid)
        return (f"video upload: {size // MB} MB in {self.transport.requests} requests, {seconds:.1f} s; device peak "
                f"Python memory during the upload {device_peak / MB:.1f} MB; centre peak RSS {before / MB:.0f} MB "
                f"before, {after / MB:.0f} MB after")


# --- The run -------------------------------------------------------------------------------------------------


def main() -> None:
    """Run the measurements and print them."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3, help="turns each of ours and the peer take")
    parser.add_argument("--video-mb", type=int, default=200)
    parser.add_argument("--batch", type=int, default=BATCH)
    parser.add_argument("--peer", type=Path, default=PEER, help="the PouchDB peer benchmark's folder")
    parser.add_argument("--record-on-device", action="store_true",
                        help="record each piece through the device's own service and outbox hook (slower set-up)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-sync-"))
    try:
        template = work / "template.db"
        ids = seed_centre(template)
        run(args, work, template, ids)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, work: Path, template: Path, ids: dict) -> None:  # noqa: ANN001
    peer = prepare_peer(args.peer)
    if isinstance(peer, str):
        print(f"PouchDB peer not run ({peer}); to run it: cp -r {args.peer} /tmp/pouchdb-peer && cd /tmp/pouchdb-peer "
              f"&& npm ci && node bench.js {args.records}")
    ours, theirs, last = [], [], None
    for n in range(1, args.rounds + 1):
        if last is not None:
            last.close()
        last = Round(args, work, template, ids, n)
        rate, line = last.push()
        ours.append(rate)
        print(f"round {n}: {line}", flush=True)
        if not isinstance(peer, str):
            figures = run_peer(peer, args.records)
            if isinstance(figures, str):
                print(f"round {n}: {figures}")
            else:
                theirs.append(figures)
                print(f"round {n}: {peer_line(figures)}", flush=True)
    try:
        summary(args, ours, theirs)
        requests, sent, received, ok = last.noop()
        print(f"sync with nothing to do: ours {requests} request(s) (push: 0, pull: {requests}), {sent} bytes sent, "
              f"{received} bytes received, ok={ok} (goal: one request each way, under 1 KB)")
        if theirs:
            f = theirs[-1]
            print(f"  PouchDB's no-op replication: {f['noop_default_http_requests']} requests "
                  f"({f['noop_default_http_requests_by_kind']}), {f['noop_default_request_bytes']} bytes sent, "
                  f"{f['noop_default_response_bytes']} bytes received")
        print(last.video(args.video_mb * MB))
    finally:
        last.close()


def summary(args, ours: list[float], theirs: list[dict[str, str]]) -> None:  # noqa: ANN001
    """Print the medians side by side and their ratio."""
    mine = statistics.median(ours)
    print(f"{args.records} records, median of {len(ours)}: ours {mine:.0f} records/s "
          f"(runs {', '.join(f'{r:.0f}' for r in ours)})")
    if not theirs:
        return
    default = statistics.median(float(f["pouchdb_docs_per_s"]) for f in theirs)
    b500 = statistics.median(float(f["pouchdb_docs_per_s_b500"]) for f in theirs)
    print(f"  PouchDB {default:.0f} docs/s (runs {', '.join(f['pouchdb_docs_per_s'] for f in theirs)}); with "
          f"batch_size 500 {b500:.0f} docs/s; its documents average {theirs[-1]['avg_doc_json_bytes']} bytes of JSON")
    print(f"ratio ours / PouchDB: {mine / default:.2f} (goal >= 1.0); against PouchDB with batch_size 500: "
          f"{mine / b500:.2f}")


if __name__ == "__main__":
    main()
