"""Canonical hashes: the quick serialisation of plain content gives exactly the text of the full normalisation."""
import json
import uuid
from datetime import date, datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker.hashing import _normalise, canonical_json, content_hash


def _by_walking(value: object) -> str:
    """The canonical text made the long way: every value normalised first."""
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


TEXT = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12) | st.sampled_from(
    ["plain", "line\r\nend", "cr\ronly", "e\u0301", "café", "\\r", "true", "null", 'say "true": no'])
SCALARS = (st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT | st.uuids()
           | st.dates() | st.datetimes(timezones=st.just(timezone.utc)))
KEYS = TEXT | st.sampled_from(["true", "false", "null", "a", "b"])
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
                      max_leaves=20)


@settings(max_examples=400, deadline=None)
@given(VALUES)
def test_quick_text_equals_the_normalised_text(value):
    """Whatever the content, the canonical text (and so every stored hash) is the one full normalisation gives."""
    assert canonical_json(value) == _by_walking(value)


@pytest.mark.parametrize("value", [
    pytest.param({True: 1, "x": 2}, id="boolean-key"),
    pytest.param({None: "n"}, id="null-key"),
    pytest.param({1: "one"}, id="number-key"),
    pytest.param({"note": "two\r\nlines"}, id="windows-line-end"),
    pytest.param({"name": "Zoe\u0301"}, id="decomposed-accent"),
    pytest.param({"id": uuid.UUID(int=7), "on": date(2026, 3, 1), "at": datetime(2026, 3, 1, 9, 30)}, id="scalars"),
])
def test_values_normalising_changes_hash_as_before(value):
    """Keys JSON spells differently, carriage returns and accents take the full path and hash as they always did."""
    assert canonical_json(value) == _by_walking(value)


def test_the_same_words_typed_on_two_devices_hash_alike():
    """Windows line ends and a decomposed accent give the same hash as the plain form."""
    assert content_hash({"note": "Zoe\u0301 said\r\nyes"}) == content_hash({"note": "Zoé said\nyes"})


def test_content_that_is_not_plain_data_is_refused():
    """Anything that is not plain data, a date, a time or a uuid cannot be hashed."""
    with pytest.raises(TypeError):
        canonical_json({"file": object()})
