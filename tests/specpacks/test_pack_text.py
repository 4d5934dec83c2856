"""The spec packs say what the source documents say, word for word."""

import copy
import json
from pathlib import Path

import pytest

from support import handbook

ROOT = Path(__file__).resolve().parents[2]
PACK = ROOT / "tracker" / "specpacks" / "cg-3085.json"
SQA_PACK = ROOT / "tests" / "data" / "specpacks" / "sqa-fm9634.json"
EXCERPT = ROOT / "tests" / "data" / "handbook_3085_unit002.txt"


UNIT_002_CODES = [
    "1.1", "1.2", "1.3",
    "2.1", "2.2", "2.3", "2.4",
    "3.1", "3.2", "3.3", "3.4",
    "4.1", "4.2", "4.3", "4.4",
    "5.1", "5.2",
    "6.1", "6.2", "6.3",
]
UNIT_001_CODES = {
    "1": ["1.1", "1.2", "1.3"],
    "2": ["2.1", "2.2", "2.3", "2.4", "2.5"],
    "3": ["3.1", "3.2", "3.3", "3.4", "3.5"],
    "4": ["4.1", "4.2", "4.3", "4.4"],
    "5": ["5.1", "5.2", "5.3", "5.4"],
    "6": ["6.1", "6.2", "6.3"],
}


def load(path):
    """Return the parsed JSON file at path."""
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def unit(pack, code):
    """Return the unit with this code from a pack."""
    return next(u for u in pack["units"] if u["code"] == code)


def criteria(unit_):
    """Return a unit's criteria in order."""
    return [c for o in unit_["outcomes"] for c in o["criteria"]]


def mismatches(unit_, expected):
    """Return the codes whose normalised pack text differs from expected."""
    found = {c["code"]: handbook.normalise(c["text"]) for c in criteria(unit_)}
    return sorted(k for k in expected.keys() | found.keys() if found.get(k) != expected.get(k))


@pytest.fixture(scope="module")
def pack():
    """Return the City & Guilds 3085 pack."""
    return load(PACK)


@pytest.fixture(scope="module")
def excerpt():
    """Return the verbatim Unit 002 excerpt of the handbook."""
    return EXCERPT.read_text(encoding="utf-8")


def test_excerpt_is_unit_002(excerpt):
    """The excerpt runs from the Unit 002 heading to the outcome 6 range."""
    assert excerpt.startswith("## Unit 002\n")
    assert "<b>Y/504/0233</b>" in excerpt
    assert excerpt.rstrip().endswith("<li>• presence to contribution.</li> </ul>")


def test_parser_finds_the_twenty_criteria(excerpt):
    """The handbook parser finds exactly the 20 Unit 002 codes, in order."""
    assert list(handbook.handbook_criteria(excerpt)) == UNIT_002_CODES


def test_unit_002_has_six_outcomes(pack):
    """Unit 002 has outcomes 1 to 6."""
    assert [o["number"] for o in unit(pack, "002")["outcomes"]] == list("123456")


def test_unit_002_criteria_codes_in_handbook_order(pack):
    """Unit 002 lists exactly the 20 criteria in handbook order."""
    assert [c["code"] for c in criteria(unit(pack, "002"))] == UNIT_002_CODES


def test_unit_002_criteria_match_handbook_word_for_word(pack, excerpt):
    """Every Unit 002 criterion text equals the handbook's."""
    assert mismatches(unit(pack, "002"), handbook.handbook_criteria(excerpt)) == []


def test_comparison_catches_one_changed_word(pack, excerpt):
    """Changing one word of one criterion makes the comparison fail."""
    changed = copy.deepcopy(unit(pack, "002"))
    criterion = next(c for c in criteria(changed) if c["code"] == "3.4")
    criterion["text"] = criterion["text"].replace("diverse", "different")
    assert "different contexts" in criterion["text"]
    assert mismatches(changed, handbook.handbook_criteria(excerpt)) == ["3.4"]


def test_unit_002_outcome_titles_match_handbook(pack, excerpt):
    """Unit 002 outcome titles equal the handbook's."""
    titles = {o["number"]: o["title"] for o in unit(pack, "002")["outcomes"]}
    assert titles == handbook.handbook_outcomes(excerpt)
    assert titles["1"] == "Be able to put person-centred values into practice"


def test_unit_002_range_only_where_handbook_bolds(pack, excerpt):
    """A criterion has range groups exactly when the handbook bolds a term in it."""
    bold = handbook.handbook_bold_terms(excerpt)
    assert {c["code"]: bool(c["range"]) for c in criteria(unit(pack, "002"))} == {
        code: bool(terms) for code, terms in bold.items()
    }


def test_unit_002_range_text_is_in_handbook(pack, excerpt):
    """Every Unit 002 range term, lead-in, item and note appears in the handbook."""
    text = handbook.normalise(excerpt)
    for c in criteria(unit(pack, "002")):
        for group in c["range"]:
            parts = [group["term"], group["text"], group.get("note", ""), *group["items"]]
            missing = [p for p in parts if handbook.normalise(p) not in text]
            assert missing == [], c["code"]


def test_unit_001_has_its_outcomes_and_criteria(pack):
    """Unit 001 has six outcomes with their 24 criteria, each with text."""
    outcomes = unit(pack, "001")["outcomes"]
    assert {o["number"]: [c["code"] for c in o["criteria"]] for o in outcomes} == UNIT_001_CODES
    assert all(c["text"].strip() for c in criteria(unit(pack, "001")))


def test_sqa_fixture_has_three_outcomes():
    """The SQA FM96 34 fixture parses and has outcomes 1 to 3."""
    sqa = load(SQA_PACK)
    assert [o["number"] for o in unit(sqa, "FM96 34")["outcomes"]] == ["1", "2", "3"]
