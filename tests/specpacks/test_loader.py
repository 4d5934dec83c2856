"""Loading spec packs: validation, idempotence, versions, and another awarding body's unit."""
import copy
import json
from pathlib import Path

import pytest
from sqlmodel import func, select

from tracker.errors import InvalidInput
from tracker.models import Criterion, RangeItem, SpecPack, Unit
from tracker.specpacks import loader

DATA = Path(__file__).parent.parent / "data" / "specpacks"


@pytest.fixture
def cg_pack():
    """The bundled City & Guilds pack, as a fresh document."""
    return copy.deepcopy(loader.bundled()[0])


def count(session, model):
    """Count a table's rows."""
    return session.exec(select(func.count()).select_from(model)).one()


def test_bundled_pack_loaded_once(backend, session, cg_pack):
    """Loading the same pack again changes nothing."""
    before = (count(session, Criterion), count(session, RangeItem))
    result = loader.load(session, cg_pack)
    assert (result.action, result.version) == ("unchanged", 1)
    assert (count(session, Criterion), count(session, RangeItem)) == before
    assert before[0] == 44  # Unit 001's 24 criteria and Unit 002's 20


def test_corrected_pack_updates_in_place(backend, session, cg_pack):
    """A higher version corrects a criterion's text without new rows."""
    cg_pack["version"] = 2
    cg_pack["units"][1]["outcomes"][0]["criteria"][2]["text"] = "use person-centred practices to agree outcomes (corrected)"
    assert loader.load(session, cg_pack).action == "updated"
    row = session.exec(select(Criterion).join(Unit).where(Unit.code == "002", Criterion.code == "1.3")).one()
    assert row.text.endswith("(corrected)")
    assert session.get(SpecPack, "cg-3085").version == 2
    assert count(session, Criterion) == 44


def test_dropped_criterion_is_retired_not_deleted(backend, session, cg_pack):
    """A criterion a corrected pack drops stays for the evidence pointing at it, marked retired."""
    cg_pack["version"] = 2
    cg_pack["units"][1]["outcomes"][5]["criteria"].pop()
    loader.load(session, cg_pack)
    row = session.exec(select(Criterion).join(Unit).where(Unit.code == "002", Criterion.code == "6.3")).one()
    assert row.retired
    unit = session.exec(select(Unit).where(Unit.code == "002")).one()
    assert [c["code"] for o in loader.unit_json(unit)["outcomes"] for c in o["criteria"]][-1] == "6.2"


@pytest.mark.parametrize("version, message", [(1, "already loaded with different content"), (0, "version")])
def test_same_or_older_version_with_changes_refused(backend, session, cg_pack, version, message):
    """Changed content needs a higher version number."""
    cg_pack["version"] = version
    cg_pack["title"] = "Changed"
    with pytest.raises(InvalidInput, match=message):
        loader.load(session, cg_pack)


def test_older_version_refused(backend, session, cg_pack):
    """A pack older than the loaded one is refused, naming both versions."""
    cg_pack["version"] = 3
    loader.load(session, cg_pack)
    cg_pack["version"] = 2
    with pytest.raises(InvalidInput, match="older than the loaded version 3"):
        loader.load(session, cg_pack)


def test_another_awarding_bodys_unit_loads(backend, session):
    """The SQA unit loads with no code changes, beside the City & Guilds pack."""
    result = loader.load(session, loader.read(DATA / "sqa-fm9634.json"))
    assert result.action == "loaded"
    unit = session.exec(select(Unit).where(Unit.pack_key == "sqa-fm9634")).one()
    shape = loader.unit_json(unit)
    assert [o["number"] for o in shape["outcomes"]] == ["1", "2", "3"]
    assert unit.strategy.mode == "assignment" and unit.strategy.rpl_allowed


def mutate(doc, path, value):
    """Set a nested key in a pack document."""
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return doc


@pytest.mark.parametrize("path, value, message", [
    (("format",), 2, "format"),
    (("pack",), "Bad Key!", "pack"),
    (("version",), "one", "version"),
    (("units", 1, "outcomes", 0, "criteria", 1, "code"), "1.1", "appears twice"),
    (("units", 1, "assessment", "methods"), ["observation", "telepathy"], "methods"),
    (("units", 1, "assessment", "assessor_qualifications"), ["NOPE"], "unknown assessor qualifications"),
    (("qualifications", 1, "units"), ["001", "999"], "unknown units"),
    (("units", 1, "assessment", "observers"), [], "observer"),
    (("units", 1, "outcomes"), [], "outcomes"),
    (("units", 1, "extra"), True, "extra"),
])
def test_invalid_pack_refused_clearly(backend, session, cg_pack, path, value, message):
    """A malformed pack is refused with a message naming the problem, and nothing is loaded."""
    before = count(session, Criterion)
    with pytest.raises(InvalidInput, match=message):
        loader.load(session, mutate(cg_pack, path, value))
    assert count(session, Criterion) == before


@pytest.mark.parametrize("content", [b"{not json", b"\xff\xfe", b"[]"])
def test_unreadable_pack_file_refused(tmp_path, content):
    """A file that is not a JSON pack is refused with a clear message."""
    path = tmp_path / "pack.json"
    path.write_bytes(content)
    with pytest.raises(InvalidInput):
        loader.parse(loader.read(path))


def test_missing_pack_file_refused(tmp_path):
    """A missing file is named in the refusal."""
    with pytest.raises(InvalidInput, match="Cannot read"):
        loader.read(tmp_path / "nowhere.json")


def test_unit_json_shape(backend, session):
    """The criteria JSON has the documented shape."""
    unit = session.exec(select(Unit).where(Unit.pack_key == "cg-3085", Unit.code == "002")).one()
    shape = json.loads(json.dumps(loader.unit_json(unit)))
    assert set(shape) == {"unit", "title", "outcomes"}
    assert set(shape["outcomes"][0]) == {"number", "title", "criteria"}
    assert set(shape["outcomes"][0]["criteria"][0]) == {"code", "text", "range"}
    assert shape["outcomes"][2]["criteria"][3]["range"][0]["items"][-1] == "people living in their own home"
