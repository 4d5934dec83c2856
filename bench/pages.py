"""Page cost at a small and a large centre: SQL statements per page, and server time against a floor.

For the caseload, the tracking grid and an evidence page, at a small centre (5 candidates) and a large
one (500 candidates, 50,000 pieces of evidence), this prints the number of SQL statements each page
runs and the median server time to serve it (the app's own Server-Timing header: from the start of the
request to the finished response, sign-in check, queries and rendering included). The floor is the very
same template with the very same context, captured from the real request, served from memory by the
same app and timed the same way, so the ratio is what loading the data costs; measured in the same run.

Run: python bench/pages.py [--repeat N] [--database-url URL]
"""
import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import flask
from sqlalchemy import event, insert, select
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tracker import create_app  # noqa: E402
from tracker.db import make_engine, transaction, upgrade  # noqa: E402
from tracker.models import (  # noqa: E402
    AssessorQualification,
    AuditEntry,
    AuditHead,
    Candidate,
    CandidateAssignment,
    Criterion,
    CriterionDecision,
    Evidence,
    EvidenceCriterion,
    EvidenceVersion,
    OccupationalCompetence,
    Qualification,
    RoleGrant,
    Unit,
    User,
    new_id,
)
from tracker.services import people  # noqa: E402
from tracker.specpacks import loader  # noqa: E402

PASSWORD = "bench password 1"
METHODS = ("observation", "work_product", "witness_testimony", "professional_discussion", "questioning")
STATUSES = ("submitted", "accepted", "accepted", "accepted", "referred", "resubmitted")
TODAY = date.today()


@dataclass
class Centre:
    """What a benchmark page needs to find in a generated centre."""

    assessor_email: str
    candidate_id: uuid.UUID
    evidence_id: uuid.UUID


def build(url: str, candidates: int, per_candidate: int, seed: int = 7) -> Centre:
    """Generate a centre with bulk inserts: one assessor whose caseload is every candidate."""
    rng = random.Random(seed)
    engine = make_engine(url)
    upgrade(engine)
    with transaction(engine) as session:
        for document in loader.bundled():
            loader.load(session, document)
        unit = session.exec(select(Unit).where(Unit.code == "002")).scalars().one()
        qualification = session.exec(select(Qualification).where(Qualification.code == "3085-02")).scalars().one()
        criteria = list(session.exec(select(Criterion.id).where(Criterion.unit_id == unit.id)).scalars())
        admin, assessor = _staff(session)
        centre = _candidates(session, rng, assessor, admin, qualification, unit, criteria, candidates,
                             per_candidate)
    engine.dispose()
    return centre


def _staff(session: Session) -> tuple[uuid.UUID, uuid.UUID]:
    """Insert an administrator and an eligible assessor."""
    admin, assessor = new_id(), new_id()
    hashed = people.hash_password(PASSWORD)
    session.execute(insert(User), [
        {"id": admin, "email": "admin@bench.test", "name": "Admin", "password_hash": hashed, "active": True,
         "created_at": datetime.now(UTC)},
        {"id": assessor, "email": "assessor@bench.test", "name": "Assessor", "password_hash": hashed,
         "active": True, "created_at": datetime.now(UTC)}])
    session.execute(insert(RoleGrant), [{"user_id": admin, "role": "administrator", "granted_at": datetime.now(UTC)},
                                        {"user_id": assessor, "role": "assessor", "granted_at": datetime.now(UTC)}])
    since = TODAY - timedelta(days=1000)
    session.execute(insert(AssessorQualification), [{"id": new_id(), "user_id": assessor, "qualification_code": "A1",
                                                     "verified_by_id": admin, "verified_on": since}])
    session.execute(insert(OccupationalCompetence), [{"id": new_id(), "user_id": assessor, "level": "competent",
                                                      "area": "Adult social care", "evidence": "Manager",
                                                      "verified_by_id": admin, "verified_on": since}])
    return admin, assessor


def _candidates(session, rng, assessor, admin, qualification, unit, criteria, count, per) -> Centre:  # noqa: ANN001
    """Insert candidates, their evidence (with versions and criteria links) and some decisions."""
    users, cands, assigns, evidence, versions, links, decisions = [], [], [], [], [], [], []
    now = datetime.now(UTC)
    for n in range(count):
        uid, cid = new_id(), new_id()
        users.append({"id": uid, "email": f"c{n}@bench.test", "name": f"Candidate {n:04d}", "active": True,
                      "created_at": now})
        cands.append({"id": cid, "user_id": uid, "qualification_id": qualification.id,
                      "registration_number": f"B{n:06d}", "date_of_birth": date(1990, 1, 1),
                      "registration_date": TODAY - timedelta(days=400), "workplace": "Home care",
                      "work_setting": "own_home", "created_at": now})
        assigns.append({"id": new_id(), "candidate_id": cid, "user_id": assessor, "role": "assessor",
                        "assigned_on": TODAY - timedelta(days=400)})
        for _ in range(per):
            eid, vid = new_id(), new_id()
            evidence.append({"id": eid, "candidate_id": cid, "unit_id": unit.id, "method": rng.choice(METHODS),
                             "status": rng.choice(STATUSES), "created_by_id": assessor, "created_at": now,
                             "current_version": 1})
            versions.append({"id": vid, "evidence_id": eid, "number": 1, "author_id": assessor,
                             "title": f"Evidence {len(evidence)}", "activity_date": TODAY - timedelta(days=30),
                             "setting": "own_home", "simulated": False, "seen_in_place": False,
                             "witness_related": False, "narrative": "Supported Mr K to plan his week. " * 8,
                             "content_hash": "0" * 64, "created_at": now})
            links += [{"version_id": vid, "criterion_id": c, "note": "Seen"} for c in rng.sample(criteria, 3)]
        decisions += [{"id": new_id(), "candidate_id": cid, "criterion_id": c, "assessor_id": assessor,
                       "outcome": "met", "note": "", "current": True, "decided_at": now}
                      for c in rng.sample(criteria, 8)]
    audit = _audit_trail(session, evidence, now)
    for model, rows in ((User, users), (RoleGrant, [{"user_id": u["id"], "role": "candidate", "granted_at": now}
                                                    for u in users]),
                        (Candidate, cands), (CandidateAssignment, assigns), (Evidence, evidence),
                        (EvidenceVersion, versions), (EvidenceCriterion, links), (CriterionDecision, decisions), (AuditEntry, audit)):
        for start in range(0, len(rows), 5000):
            session.execute(insert(model), rows[start:start + 5000])
    return Centre("assessor@bench.test", cands[0]["id"], evidence[0]["id"])


def _audit_trail(session: Session, evidence: list[dict], now: datetime) -> list[dict]:
    """Return one audit entry per piece of evidence (as capture writes), and move the chain head past them."""
    head = session.get(AuditHead, 1)
    rows = [{"seq": head.seq + n, "at": now, "actor_id": e["created_by_id"], "action": "evidence.captured",
             "entity_type": "evidence", "entity_id": str(e["id"]), "candidate_id": e["candidate_id"], "details": {},
             "prev_hash": f"{head.seq + n - 1:064x}", "hash": f"{head.seq + n:064x}"}
            for n, e in enumerate(evidence, start=1)]
    head.seq, head.hash = rows[-1]["seq"], rows[-1]["hash"]
    return rows


class Counter:
    """Count the SQL statements an engine runs."""

    def __init__(self, engine):  # noqa: ANN001
        self.count = 0
        event.listen(engine, "before_cursor_execute", self._seen)

    def _seen(self, *_args) -> None:  # noqa: ANN002
        self.count += 1


def measure(url: str, centre: Centre, repeat: int) -> dict[str, tuple[int, float, float]]:
    """Serve each page repeatedly; return its statement count, median time and median floor time."""
    instance = tempfile.mkdtemp(prefix="bench-instance-")
    app = create_app({"SECRET_KEY": "bench", "DATABASE_URL": url, "RATELIMIT_ENABLED": False,
                      "WTF_CSRF_ENABLED": False}, instance=instance)
    _add_floor_route(app)
    counter = Counter(app.extensions["engine"])
    rendered: list[tuple[str, dict]] = []
    flask.templating.template_rendered.connect(lambda _app, template, context, **_: rendered.append(
        (template.name, dict(context))), app, weak=False)
    client = app.test_client()
    client.post("/auth/login", data={"email": centre.assessor_email, "password": PASSWORD})
    pages = {"caseload": "/caseload/", "tracking grid": f"/candidates/{centre.candidate_id}",
             "evidence page": f"/evidence/{centre.evidence_id}"}
    return {name: _page(app, client, counter, rendered, path, repeat) for name, path in pages.items()}


def _page(app, client, counter, rendered, path: str, repeat: int) -> tuple[int, float, float, float]:  # noqa: ANN001
    """Time one page, then its floors: the same template and context served from memory, and rendered bare."""
    client.get(path)  # warm caches: templates compiled, connections open
    counter.count, rendered[:] = 0, []
    response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    statements, captured = counter.count, rendered[-1]
    app.config["BENCH_CAPTURED"] = captured
    times = [_server_time(client, path) for _ in range(repeat)]
    cold = []
    for _ in range(repeat):
        app.extensions["read_cache"].clear()  # as after any change in the centre: every read model rebuilt
        cold.append(_server_time(client, path))
    app.extensions["read_cache"].clear()
    counter.count = 0
    client.get(path)
    cold_statements = counter.count
    floor = [_server_time(client, "/bench/floor") for _ in range(repeat)]
    template, context = captured
    with app.test_request_context(path):
        bare = []
        for _ in range(repeat):
            start = time.perf_counter()
            app.jinja_env.get_template(template).render(context)
            bare.append(time.perf_counter() - start)
    return (statements, cold_statements, statistics.median(times), statistics.median(cold), statistics.median(floor),
            statistics.median(bare))


def _server_time(client, path: str) -> float:  # noqa: ANN001
    """Request a page and return the server time the app reports in its Server-Timing header."""
    return float(client.get(path).headers["Server-Timing"].split("dur=")[1]) / 1000


def _add_floor_route(app) -> None:  # noqa: ANN001
    """Serve the captured template with its captured context: the same page with its data already in memory."""
    @app.get("/bench/floor")
    def floor():  # noqa: ANN202
        template, context = app.config["BENCH_CAPTURED"]
        return app.jinja_env.get_template(template).render(context)


def main() -> None:
    """Build both centres, measure, and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--database-url", help="a PostgreSQL server URL (a database per centre is made in it)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-pages-"))
    results = {}
    for label, candidates, per in (("small", 5, 100), ("large", 500, 100)):
        url = f"sqlite:///{folder / label}.db" if not args.database_url else _pg(args.database_url, label)
        started = time.perf_counter()
        centre = build(url, candidates, per)
        print(f"{label} centre: {candidates} candidates, {candidates * per:,} pieces of evidence "
              f"(built in {time.perf_counter() - started:.1f} s)")
        results[label] = measure(url, centre, args.repeat)
    _report(results)


def _pg(server: str, label: str) -> str:
    from sqlalchemy import create_engine, text

    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS bench_{label} WITH (FORCE)"))
        conn.execute(text(f"CREATE DATABASE bench_{label}"))
    return admin.url.set(database=f"bench_{label}").render_as_string(hide_password=False)


def _report(results: dict) -> None:
    print(f"\n{'page':<14} {'statements small/large':>23} {'small ms':>9} {'large ms':>9} {'floor ms':>9} "
          f"{'large/floor':>12} {'bare render ms':>15}")
    ok, rows = True, []
    for page in results["small"]:
        s_count, s_cold_count, s_time, s_cold, _, _ = results["small"][page]
        l_count, l_cold_count, l_time, l_cold, l_floor, l_bare = results["large"][page]
        ratio = l_time / l_floor
        ok &= s_count == l_count and s_cold_count == l_cold_count and ratio <= 3
        print(f"{page:<14} {f'{s_count} / {l_count}':>23} {s_time * 1000:>9.1f} {l_time * 1000:>9.1f} "
              f"{l_floor * 1000:>9.1f} {ratio:>11.2f}x {l_bare * 1000:>15.2f}")
        rows.append(f"{page + ' (rebuilt)':<14} {f'{s_cold_count} / {l_cold_count}':>23} {s_cold * 1000:>9.1f} "
                    f"{l_cold * 1000:>9.1f} {l_floor * 1000:>9.1f} {l_cold / l_floor:>11.2f}x")
    print("\nthe same pages just after a change in the centre (read models rebuilt on every request):")
    print("\n".join(rows))
    print("\nserver time from the app's Server-Timing header, median of the repeats. floor: the same template and "
          "context, captured from the real request, served from memory by the same app (no queries); bare render: "
          "the template rendered alone, outside any request. A page's read model is kept until the audit log "
          "shows a change that could alter it; the first table is a page opened again, the second after a change.")
    print("goals: the same statement count at both sizes (both tables); the large centre within 3x of the floor: "
          + ("met" if ok else "NOT met"))


if __name__ == "__main__":
    main()
