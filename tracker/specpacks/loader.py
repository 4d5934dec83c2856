"""Spec packs: validate a qualification's data file and load it, idempotently, by version."""
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlmodel import Session, select

from ..audit import SYSTEM, record
from ..errors import InvalidInput
from ..hashing import content_hash
from ..models import Criterion, Outcome, Qualification, QualificationUnit, RangeItem, SpecPack, Unit
from .schema import Pack

BUNDLED = ("cg-3085.json",)


@dataclass(frozen=True)
class LoadResult:
    """What loading a pack did."""

    pack: str
    version: int
    action: str  # "loaded", "updated" or "unchanged"

    def __str__(self) -> str:
        return f"{self.pack} version {self.version}: {self.action}"


def parse(document: Any) -> Pack:
    """Validate a pack document, turning every problem into one readable refusal."""
    try:
        return Pack.model_validate(document)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'pack'}: {e['msg']}" for e in exc.errors()[:10])
        raise InvalidInput(f"The spec pack is not valid: {problems}", field="pack") from None


def read(path: str | Path) -> dict[str, Any]:
    """Read a pack file as JSON, refusing an unreadable or malformed one clearly."""
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except OSError as exc:
        raise InvalidInput(f"Cannot read the spec pack {path}: {exc.strerror}.", field="pack") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"The spec pack {path} is not valid JSON: {exc}.", field="pack") from None


def bundled() -> list[dict[str, Any]]:
    """Return the packs shipped with the tracker."""
    folder = resources.files("tracker.specpacks")
    return [json.loads(folder.joinpath(name).read_text(encoding="utf-8")) for name in BUNDLED]


def load(session: Session, document: Any) -> LoadResult:
    """Load a pack: new, a newer version (updating in place), or the same again (nothing changes)."""
    pack = parse(document)
    digest = content_hash(pack.model_dump(mode="json"))
    existing = session.get(SpecPack, pack.pack)
    if existing is not None:
        if existing.version == pack.version and existing.sha256 == digest:
            return LoadResult(pack.pack, pack.version, "unchanged")
        _check_newer(existing, pack)
    row = existing or SpecPack(key=pack.pack, version=pack.version, sha256=digest, awarding_body="", title="", document={})
    row.version, row.sha256, row.document = pack.version, digest, pack.model_dump(mode="json")
    row.awarding_body, row.title = pack.awarding_body, pack.title
    session.add(row)
    session.flush()
    units = {u.code: _load_unit(session, pack.pack, u) for u in pack.units}
    for q in pack.qualifications:
        _load_qualification(session, pack, q, units)
    session.flush()
    outcome = "updated" if existing else "loaded"
    record(session, SYSTEM, f"pack.{outcome}", row, version=pack.version, sha256=digest)
    return LoadResult(pack.pack, pack.version, outcome)


def _check_newer(existing: SpecPack, pack: Pack) -> None:
    if pack.version == existing.version:
        raise InvalidInput(
            f"Spec pack {pack.pack} version {pack.version} is already loaded with different content. "
            "Give the corrected pack a higher version number.", field="version")
    if pack.version < existing.version:
        raise InvalidInput(
            f"Spec pack {pack.pack} version {pack.version} is older than the loaded version {existing.version}.",
            field="version")


def _upsert(session: Session, model, keys: dict[str, Any], values: dict[str, Any]):
    """Find a row by its natural key and set its values, or make it."""
    row = session.exec(select(model).filter_by(**keys)).first()
    if row is None:
        row = model(**keys, **values)
    else:
        for name, value in values.items():
            setattr(row, name, value)
    session.add(row)
    session.flush()
    return row


def _load_unit(session: Session, pack_key: str, spec) -> Unit:
    unit = _upsert(session, Unit, {"pack_key": pack_key, "code": spec.code}, {
        "title": spec.title, "reference": spec.reference, "level": spec.level, "credits": spec.credits,
        "glh": spec.glh, "aim": spec.aim, "assessment": spec.assessment.model_dump(mode="json"),
    })
    kept: set[str] = set()
    position = 0
    for o_pos, o_spec in enumerate(spec.outcomes):
        outcome = _upsert(session, Outcome, {"unit_id": unit.id, "number": o_spec.number},
                          {"title": o_spec.title, "position": o_pos})
        for c_spec in o_spec.criteria:
            _load_criterion(session, unit, outcome, c_spec, position)
            kept.add(c_spec.code)
            position += 1
    # A corrected pack may drop a criterion that evidence already points at: retire it, never delete it.
    for old in session.exec(select(Criterion).where(Criterion.unit_id == unit.id)):
        old.retired = old.code not in kept
        session.add(old)
    return unit


def _load_criterion(session: Session, unit: Unit, outcome: Outcome, spec, position: int) -> None:
    groups = [g.model_dump(mode="json", exclude_none=True) for g in spec.range]
    criterion = _upsert(session, Criterion, {"unit_id": unit.id, "code": spec.code}, {
        "outcome_id": outcome.id, "text": spec.text, "range": groups, "position": position, "retired": False,
    })
    kept = set()
    item_pos = 0
    for group in spec.range:
        for text in group.items:
            key = range_key(group.term, text)
            _upsert(session, RangeItem, {"criterion_id": criterion.id, "key": key},
                    {"term": group.term[:200], "text": text[:500], "position": item_pos, "retired": False})
            kept.add(key)
            item_pos += 1
    for old in session.exec(select(RangeItem).where(RangeItem.criterion_id == criterion.id)):
        if old.key not in kept:
            old.retired = True
            session.add(old)


def _load_qualification(session: Session, pack: Pack, spec, units: dict[str, Unit]) -> None:
    qual = _upsert(session, Qualification, {"pack_key": pack.pack, "code": spec.code}, {
        "title": spec.title, "level": spec.level, "credits": spec.credits,
        "accreditation_number": spec.accreditation_number, "min_age": pack.min_age,
    })
    for position, code in enumerate(spec.units):
        _upsert(session, QualificationUnit, {"qualification_id": qual.id, "unit_id": units[code].id},
                {"position": position})


def range_key(term: str, text: str) -> str:
    """Make the stable key of a range item from its heading and text."""
    slug = re.sub(r"[^a-z0-9]+", "-", f"{term} {text}".lower()).strip("-")
    return slug[:200]


def unit_json(unit: Unit) -> dict[str, Any]:
    """Return a unit as the `tracker criteria --json` shape."""
    return {
        "unit": unit.code,
        "title": unit.title,
        "outcomes": [
            {
                "number": o.number,
                "title": o.title,
                "criteria": [{"code": c.code, "text": c.text, "range": c.range} for c in o.criteria if not c.retired],
            }
            for o in unit.outcomes
        ],
    }
