"""CAMERA sample selection as a pure function: the same items, rates and seed always give the same sample.

Items are ordered by id and every random draw comes from random.Random(seed) in that order, so an EQA can
reproduce a sample from the strategy, the data and the seed alone, whatever the database's row order.
"""
import random
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Item:
    """One decision (or unit sign-off) that could be sampled, with the CAMERA facts about it."""

    id: str
    candidate_id: str
    assessor_id: str
    assessor: str = ""
    criterion: str = ""
    methods: tuple[str, ...] = ()
    sites: tuple[str, ...] = ()
    ordinal: int = 0  # its place among the assessor's first decisions, 1 for the first (0: later or unknown)
    new_assessor: bool = False  # the assessor's qualification was recorded recently
    disagreed: bool = False  # an IQA disagreed with this assessor this cycle


@dataclass(frozen=True)
class Rates:
    """The percentages the centre sets for each risk, and what counts as new."""

    base: int = 10
    new_assessor: int = 100
    new_assessor_decisions: int = 10
    new_assessor_months: int = 12
    disagreement: int = 50
    new_site: int = 50
    new_sites: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True)
class Pick:
    """A chosen item and why it was chosen."""

    id: str
    reason: str


@dataclass(frozen=True)
class Covered:
    """What earlier samples this cycle already covered."""

    assessors: frozenset[str] = frozenset()
    methods: frozenset[str] = frozenset()
    sites: frozenset[str] = frozenset()


def label(value: str) -> str:
    """Return a method or setting code as words."""
    return value.replace("_", " ")


def risk(item: Item, rates: Rates) -> tuple[int, str]:
    """Return the highest rate that applies to an item and the reason it states."""
    options = [(rates.base, f"routine: {rates.base}% of decisions")]
    if 0 < item.ordinal <= rates.new_assessor_decisions:
        options.append((rates.new_assessor, f"new assessor: {rates.new_assessor}% of first "
                                            f"{rates.new_assessor_decisions} decisions"))
    if item.new_assessor:
        options.append((rates.new_assessor, f"new assessor: qualified within {rates.new_assessor_months} months, "
                                            f"{rates.new_assessor}% sampled"))
    if item.disagreed:
        options.append((rates.disagreement, f"assessor with a disagreement this cycle: {rates.disagreement}%"))
    new_sites = sorted(set(item.sites) & rates.new_sites)
    if new_sites:
        options.append((rates.new_site, f"new site ({', '.join(map(label, new_sites))}): {rates.new_site}%"))
    # The highest rate wins; ties keep the first listed, so the reason is stable.
    return max(options, key=lambda o: o[0])


def draw(items: Iterable[Item], rates: Rates, seed: int, covered: Covered = Covered()) -> list[Pick]:
    """Choose items at their risk rates, then one more for each assessor, method or site not yet covered."""
    ordered = sorted(items, key=lambda i: i.id)
    rng = random.Random(seed)
    picks: dict[str, Pick] = {}
    for item in ordered:
        rate, reason = risk(item, rates)
        if rng.random() * 100 < rate:  # one draw per item whatever the rate, so later draws never shift
            picks[item.id] = Pick(item.id, reason)
    chosen = [i for i in ordered if i.id in picks]
    for what, values_of, done in (("assessor", lambda i: (i.assessor_id,), covered.assessors),
                                  ("method", lambda i: i.methods, covered.methods),
                                  ("site", lambda i: i.sites, covered.sites)):
        have = set(done) | {v for i in chosen for v in values_of(i)}
        for value in sorted({v for i in ordered for v in values_of(i)} - have):
            pool = [i for i in ordered if value in values_of(i) and i.id not in picks]
            if value in have or not pool:
                continue
            item = rng.choice(pool)
            name = item.assessor or value if what == "assessor" else label(value)
            picks[item.id] = Pick(item.id, f"{what} not yet sampled this cycle: {name}")
            chosen.append(item)
            have |= set(values_of(item))
    return [picks[i.id] for i in ordered if i.id in picks]
