"""Pulling over real HTTP: the scoped snapshot, tiny when nothing changed, cursors the centre cannot honour."""
import hashlib
import json
from datetime import datetime, timedelta

import pytest
from sqlalchemy import update
from sqlmodel import select

from api_support import Device
from support.factories import NOW
from sync_support import capture, evidence_id
from tracker.models import AuditHead, CandidateAssignment
from tracker.services import deletions, evidence, people

SPEC_TABLES = {"specpack", "qualification", "qualificationunit", "unit", "outcome", "criterion", "rangeitem"}


@pytest.fixture
def caseload(device, session, factory):
    """Ann assesses two candidates; Bob assesses a third; Ann's device is signed in."""
    ann, bob = factory.assessor(name="Ann Assessor"), factory.assessor(name="Bob Assessor")
    witness = factory.expert_witness(name="Eve Expert")
    mine = [factory.candidate(assessors=(ann,), expert_witnesses=(witness,)), factory.candidate(assessors=(ann,))]
    theirs = factory.candidate(assessors=(bob,))
    observed = factory.capture(ann, mine[0], "observation", signatures=[{"kind": "observer"}])
    factory.capture(bob, theirs, "observation")
    session.commit()
    assert device.enrol(ann).status_code == 201
    device.ann, device.bob, device.witness, device.mine, device.theirs = ann, bob, witness, mine, theirs
    device.observed = observed
    return device


def ids(rows: list[dict]) -> set[str]:
    """Return the id column of some rows."""
    return {r["id"] for r in rows}


def test_first_pull_gives_pack_caseload_and_people_without_password_hashes(caseload):
    """The first pull: the spec pack, Ann's candidates whole, the staff the rules need, and no password hash."""
    tables, removed, _cursor = caseload.pull_all()
    assert SPEC_TABLES <= set(tables)
    assert ids(tables["candidate"]) == {str(c.id) for c in caseload.mine}
    assert str(caseload.observed.id) in ids(tables["evidence"])
    assert {r["evidence_id"] for r in tables["evidenceversion"]} == ids(tables["evidence"])
    assert tables["signature"] and tables["evidencecriterion"]
    people_ids = ids(tables["user_account"])
    assert {str(caseload.ann.id), str(caseload.witness.id)} <= people_ids
    assert str(caseload.bob.id) not in people_ids
    assert all("password_hash" not in row for row in tables["user_account"])
    assert {r["user_id"] for r in tables["assessorqualification"]} >= {str(caseload.ann.id)}
    assert removed == {"candidate": []}


def test_rows_are_whole_rows_as_json(caseload, session):
    """Rows carry every column: uuids as text, datetimes ISO-8601 in UTC, dates ISO."""
    tables, _removed, _cursor = caseload.pull_all()
    version = next(r for r in tables["evidenceversion"] if r["evidence_id"] == str(caseload.observed.id))
    assert set(version) >= {"id", "evidence_id", "number", "title", "activity_date", "content_hash", "created_at"}
    assert version["created_at"].endswith("+00:00") and len(version["activity_date"]) == 10


@pytest.mark.parametrize("params", [{}, {"user_id": "x"}, {"candidate": "theirs"}, {"scope": "all"},
                                    {"limit": "200"}, {"as": "bob"}])
def test_another_assessors_candidates_are_never_pulled(caseload, params):
    """Test 10: whatever parameters a device sends, Bob's candidate and evidence never reach Ann's device."""
    extra = {k: (str(caseload.theirs.id) if v == "theirs" else str(caseload.bob.id) if v == "bob" else v)
             for k, v in params.items()}
    answer = caseload.get("/api/v1/pull", params=extra)
    assert answer.status_code == 200
    text = answer.text
    assert str(caseload.theirs.id) not in text and str(caseload.bob.id) not in text


def test_second_pull_with_no_changes_is_tiny(caseload):
    """Nothing changed: the same cursor, the centre's clock and what it holds from the device, well under 1 KB."""
    _tables, _removed, cursor = caseload.pull_all()
    answer = caseload.pull(cursor)
    assert answer.status_code == 200
    assert len(answer.content) < 1024
    found = answer.json()
    assert abs(datetime.fromisoformat(found.pop("now")) - NOW) < timedelta(minutes=1)  # the centre's clock
    assert found == {"cursor": cursor, "more": False, "reset": False, "tables": {}, "removed": {"candidate": []},
                     "acknowledged": {"count": 0, "digest": hashlib.sha256(b"").hexdigest()}}


def test_change_on_the_centre_appears_in_the_next_pull(caseload, session, factory):
    """A review at the centre sends that candidate again whole, and only that candidate."""
    _tables, _removed, cursor = caseload.pull_all()
    other = factory.capture(caseload.bob, caseload.theirs, "observation")  # outside Ann's scope
    evidence.review(session, factory.actor(caseload.ann), caseload.observed.id, "accepted", "Clear practice.")
    session.commit()
    tables, removed, after = caseload.pull_all(cursor)
    assert after != cursor
    assert ids(tables["candidate"]) == {str(caseload.mine[0].id)}
    assert [r["outcome"] for r in tables["evidencereview"]] == ["accepted"]
    assert not SPEC_TABLES & set(tables)
    assert str(other.id) not in json.dumps(tables)
    assert caseload.pull(after).json()["tables"] == {}


def test_ended_assignment_lists_the_candidate_as_removed(caseload, session, factory):
    """An assignment ended on the centre: the candidate is in `removed`, and no longer sent."""
    _tables, _removed, cursor = caseload.pull_all()
    row = session.exec(select(CandidateAssignment).where(CandidateAssignment.user_id == caseload.ann.id,
                                                         CandidateAssignment.candidate_id == caseload.mine[1].id)).one()
    people.end_assignment(session, factory.as_admin, caseload.mine[1], row.id)
    session.commit()
    tables, removed, _after = caseload.pull_all(cursor)
    assert removed["candidate"] == [str(caseload.mine[1].id)]
    assert str(caseload.mine[1].id) not in ids(tables.get("candidate", []))
    fresh, _removed, _cursor = caseload.pull_all()
    assert ids(fresh["candidate"]) == {str(caseload.mine[0].id)}


def test_deleted_evidence_is_listed_as_removed(caseload, session, factory):
    """A draft deleted on the centre is named in removed.evidence, so devices drop their copy."""
    draft = capture(factory, caseload.mine[1], 1, submit=False)
    assert caseload.push([draft]).json()["verdicts"][0]["verdict"] == "applied"
    _tables, _removed, cursor = caseload.pull_all()
    deletions.delete_draft(session, factory.as_admin, evidence_id(draft), "Wrong candidate")
    session.commit()
    tables, removed, _after = caseload.pull_all(cursor)
    assert removed["evidence"] == [str(evidence_id(draft))]
    assert str(evidence_id(draft)) not in ids(tables.get("evidence", []))


@pytest.mark.parametrize("cursor", ["garbage", "1.x.y.z", "", "2.0.0.0..", "1." + "0" * 32 + ".5.3..abc"])
def test_malformed_cursor_is_409_resync_required(caseload, cursor):
    """A cursor the centre did not make: 409 resync_required (an empty one means "from the start")."""
    answer = caseload.pull(cursor)
    if cursor == "":
        assert answer.status_code == 200 and answer.json()["reset"] is True
        return
    assert answer.status_code == 409 and answer.json()["error"] == "resync_required"


def test_cursor_ahead_of_the_server_is_409(caseload, session):
    """A server restored from a backup is behind the device's cursor: 409 resync_required."""
    _tables, _removed, cursor = caseload.pull_all()
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq - 3))
    session.commit()
    answer = caseload.pull(cursor)
    assert answer.status_code == 409 and answer.json()["error"] == "resync_required"
    assert caseload.pull().status_code == 200  # from no cursor, it rebuilds


def test_another_persons_cursor_is_409(caseload, session, factory, centre):
    """A cursor made for another person is not honoured."""
    _tables, _removed, cursor = caseload.pull_all()
    bob_device = Device(centre)
    bob_device.enrol(caseload.bob)
    answer = bob_device.pull(cursor)
    assert answer.status_code == 409 and answer.json()["error"] == "resync_required"


def test_pages_split_between_candidates_never_inside_one(device, session, factory):
    """With one candidate a page, each page holds whole snapshots; together they hold everything once."""
    ann = factory.assessor()
    candidates = [factory.candidate(assessors=(ann,)) for _ in range(3)]
    made = {c.id: [factory.capture(ann, c, "observation").id for _ in range(2)] for c in candidates}
    session.commit()
    device.enrol(ann)
    seen, after, pages = [], None, 0
    while True:
        page = device.pull(after, limit=1).json()
        pages += 1
        got = {r["id"] for r in page["tables"].get("candidate", [])}
        assert len(got) == 1
        (candidate_id,) = got
        evidence_ids = {r["id"] for r in page["tables"]["evidence"]}
        assert evidence_ids == {str(e) for c, es in made.items() if str(c) == candidate_id for e in es}
        assert {r["evidence_id"] for r in page["tables"]["evidenceversion"]} == evidence_ids
        seen.append(candidate_id)
        after = page["cursor"]
        if not page["more"]:
            break
    assert sorted(seen) == sorted(str(c.id) for c in candidates) and pages == 3


def test_expert_witness_pulls_only_what_they_recorded(device, session, factory):
    """An expert witness's device gets their candidate but only the evidence they recorded."""
    ann, eve = factory.assessor(), factory.expert_witness()
    candidate = factory.candidate(assessors=(ann,), expert_witnesses=(eve,))
    by_ann = factory.capture(ann, candidate, "observation")
    by_eve = factory.capture(eve, candidate, "observation", signatures=[{"kind": "observer"}])
    session.commit()
    device.enrol(eve)
    tables, _removed, _cursor = device.pull_all()
    assert ids(tables["candidate"]) == {str(candidate.id)}
    assert ids(tables["evidence"]) == {str(by_eve.id)}
    assert str(by_ann.id) not in json.dumps(tables)


@pytest.mark.parametrize("limit", ["0", "-1", "x", "201", "1.5"])
def test_bad_limit_is_a_clear_400(caseload, limit):
    """A page size that is not 1 to 200: 400 naming the field."""
    answer = caseload.pull(limit=limit)
    assert answer.status_code == 400 and answer.json()["field"] == "limit"


def test_people_changes_are_sent_again(caseload, session, factory):
    """A withdrawn qualification reaches devices: the people rows come again in the next pull."""
    _tables, _removed, cursor = caseload.pull_all()
    people.add_iqa_qualification(session, factory.as_admin, caseload.ann.id, "V1", None, factory.today)
    session.commit()
    tables, _removed, _after = caseload.pull_all(cursor)
    assert str(caseload.ann.id) in ids(tables["user_account"])
    assert tables["iqaqualification"]
