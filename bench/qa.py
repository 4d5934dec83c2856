"""IQA sampling cost at a small and a large centre: time to draw a sample, build the coverage matrix, draw from the
signed-off units and load a sampled sign-off's review page.

At 5 candidates and at 500 candidates (50,000 criterion decisions, 10,000 of them current, each resting on
evidence; every unit signed off), this prints the SQL statement count of each job (it must not grow with the
data), and the median time of each against a floor measured in the same run: one plain SELECT of the same
current decisions' rows, the least any selection must read.

Run: python bench/qa.py [--repeat N] [--database-url URL]
"""
import argparse
import random
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from sqlalchemy import event, insert, select, text
from sqlmodel import Session

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tracker.db import make_engine, transaction, upgrade  # noqa: E402
from tracker.models import (  # noqa: E402
    AssessorQualification,
    Candidate,
    CandidateAssignment,
    Criterion,
    CriterionDecision,
    DecisionEvidence,
    Evidence,
    EvidenceVersion,
    Qualification,
    RoleGrant,
    Sample,
    SampleItem,
    SamplingStrategy,
    Unit,
    UnitSignOff,
    User,
    new_id,
)
from tracker.services import quality  # noqa: E402
from tracker.specpacks import loader  # noqa: E402

METHODS = ("observation", "work_product", "witness_testimony", "professional_discussion", "questioning")
SETTINGS = ("own_home", "long_term_care", "day_service", "supported_living")
TODAY = date.today()
DECISIONS_PER_CANDIDATE = 100  # 20 current (one per criterion) and 80 earlier ones they replaced


def build(url: str, candidates: int, seed: int = 7) -> tuple[uuid.UUID, uuid.UUID, uuid.UUID]:
    """Generate a centre with bulk inserts; return the IQA's interim and summative strategy ids and a sampled
    sign-off's item id."""
    rng = random.Random(seed)
    engine = make_engine(url)
    upgrade(engine)
    now = datetime.now(UTC)
    with transaction(engine) as session:
        for document in loader.bundled():
            loader.load(session, document)
        unit = session.exec(select(Unit).where(Unit.code == "002")).scalars().one()
        qualification = session.exec(select(Qualification).where(Qualification.code == "3085-02")).scalars().one()
        criteria = list(session.exec(select(Criterion.id).where(Criterion.unit_id == unit.id)).scalars())
        admin, iqa, assessors = new_id(), new_id(), [new_id() for _ in range(5)]
        staff = [(admin, "administrator"), (iqa, "iqa")] + [(a, "assessor") for a in assessors]
        rows: dict = {m: [] for m in (User, RoleGrant, AssessorQualification, Candidate, CandidateAssignment,
                                      Evidence, EvidenceVersion, CriterionDecision, DecisionEvidence, UnitSignOff)}
        for n, (uid, role) in enumerate(staff):
            rows[User].append({"id": uid, "email": f"s{n}@bench.test", "name": f"Staff {n}", "active": True,
                               "created_at": now})
            rows[RoleGrant].append({"user_id": uid, "role": role, "granted_at": now, "lead": False})
        for n, a in enumerate(assessors):
            rows[AssessorQualification].append({"id": new_id(), "user_id": a, "qualification_code": "A1",
                                                "verified_by_id": admin,
                                                "verified_on": TODAY - timedelta(days=100 + 400 * n)})
        for n in range(candidates):
            _candidate(rows, rng, n, qualification.id, unit.id, criteria, iqa, assessors[n % 5], now)
        for model, batch in rows.items():
            for start in range(0, len(batch), 5000):
                session.execute(insert(model), batch[start:start + 5000])
        cycle = {"cycle_start": TODAY - timedelta(days=90), "cycle_end": TODAY + timedelta(days=1)}
        strategy = SamplingStrategy(iqa_id=iqa, name="Bench", kind="interim", new_sites="day_service", **cycle)
        summative = SamplingStrategy(iqa_id=iqa, name="Bench summative", kind="summative", **cycle)
        session.add_all([strategy, summative])
        session.flush()
        sample = Sample(strategy_id=summative.id, seed=1, drawn_by_id=iqa)
        session.add(sample)
        session.flush()
        first = rows[UnitSignOff][0]
        item = SampleItem(sample_id=sample.id, signoff_id=first["id"], candidate_id=first["candidate_id"],
                          reason="bench")
        session.add(item)
        session.flush()
        ids = strategy.id, summative.id, item.id
    engine.dispose()
    return ids


def _candidate(rows: dict, rng: random.Random, n: int, qualification_id: int, unit_id: int, criteria: list[int],
               iqa: uuid.UUID, assessor: uuid.UUID, now: datetime) -> None:
    """Add one candidate's rows: evidence per criterion and a history of decisions, the last one current."""
    uid, cid = new_id(), new_id()
    rows[User].append({"id": uid, "email": f"c{n}@bench.test", "name": f"Candidate {n:04d}", "active": True,
                       "created_at": now})
    rows[Candidate].append({"id": cid, "user_id": uid, "qualification_id": qualification_id,
                            "registration_number": f"B{n:06d}", "date_of_birth": date(1990, 1, 1),
                            "registration_date": TODAY - timedelta(days=400), "workplace": "Home care",
                            "work_setting": "own_home", "created_at": now})
    for who, role in ((assessor, "assessor"), (iqa, "iqa")):
        rows[CandidateAssignment].append({"id": new_id(), "candidate_id": cid, "user_id": who, "role": role,
                                          "assigned_on": TODAY - timedelta(days=400)})
    per_criterion = DECISIONS_PER_CANDIDATE // len(criteria)
    for c in criteria:
        eid = new_id()
        rows[Evidence].append({"id": eid, "candidate_id": cid, "unit_id": unit_id, "method": rng.choice(METHODS),
                               "status": "accepted", "created_by_id": assessor, "created_at": now,
                               "current_version": 1})
        rows[EvidenceVersion].append({"id": new_id(), "evidence_id": eid, "number": 1, "author_id": assessor,
                                      "title": "Evidence", "activity_date": TODAY - timedelta(days=30),
                                      "setting": rng.choice(SETTINGS), "simulated": False, "seen_in_place": False,
                                      "witness_related": False, "narrative": "Observed.", "content_hash": "0" * 64,
                                      "created_at": now})
        for k in range(per_criterion):
            did = new_id()
            rows[CriterionDecision].append({"id": did, "candidate_id": cid, "criterion_id": c, "assessor_id": assessor,
                                            "outcome": "met", "note": "", "current": k == per_criterion - 1,
                                            "decided_at": now - timedelta(days=per_criterion - k)})
            rows[DecisionEvidence].append({"decision_id": did, "evidence_id": eid})
    rows[UnitSignOff].append({"id": new_id(), "candidate_id": cid, "unit_id": unit_id, "assessor_id": assessor,
                              "declaration": "I declare that the candidate has met all the assessment criteria.",
                              "content_hash": "0" * 64, "signed_at": now})


def measure(url: str, ids: tuple[uuid.UUID, uuid.UUID, uuid.UUID], repeat: int) -> dict[str, tuple[float, int]]:
    """Return the median seconds and the statement count of the floor, the draws, the coverage matrix and a sampled
    sign-off's review page data."""
    engine = make_engine(url)
    seen = []
    event.listen(engine, "before_cursor_execute", lambda *a: seen.append(1))
    results = {}
    floor_sql = text("SELECT id, candidate_id, assessor_id, criterion_id, decided_at FROM criteriondecision "
                     "WHERE current")
    with Session(engine) as session:
        strategy, summative = (session.get(SamplingStrategy, i) for i in ids[:2])
        item = session.get(SampleItem, ids[2])
        jobs = {"floor (one SELECT of the current decisions)": lambda: session.execute(floor_sql).all(),
                "draw a sample (seeded)": lambda: quality.preview(session, strategy, 2026),
                "coverage matrix": lambda: quality.coverage(session, strategy),
                "draw from signed-off units (seeded)": lambda: quality.preview(session, summative, 2026),
                "sampled sign-off's review page data": lambda: quality.item_detail(session, item)}
        for name, job in jobs.items():
            times = []
            for _ in range(repeat):
                seen.clear()
                started = time.perf_counter()
                job()
                times.append(time.perf_counter() - started)
            results[name] = (statistics.median(times), len(seen))
        size = len(quality.preview(session, strategy, 2026))
    engine.dispose()
    results["_sample_size"] = (0.0, size)
    return results


def main() -> None:
    """Build a small and a large centre, and print each job's statements and time against the floor."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url", help="a PostgreSQL server URL whose databases may be created")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for candidates in (5, 500):
            url = args.database_url or f"sqlite:///{tmp}/qa{candidates}.db"
            started = time.perf_counter()
            ids = build(url, candidates)
            built = time.perf_counter() - started
            results = measure(url, ids, args.repeat)
            _, size = results.pop("_sample_size")
            floor = results["floor (one SELECT of the current decisions)"][0]
            print(f"\n{candidates} candidates, {candidates * DECISIONS_PER_CANDIDATE} decisions "
                  f"({candidates * 20} current), built in {built:.1f}s; the sample has {size} items")
            for name, (seconds, statements) in results.items():
                print(f"  {name:46s} {statements:3d} statements  {seconds * 1000:9.1f} ms  "
                      f"{seconds / floor if floor else 0:7.1f}x floor")


if __name__ == "__main__":
    main()
