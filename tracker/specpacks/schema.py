"""The spec pack format: a qualification's units, criteria, range and assessment strategy."""
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

FORMAT_VERSION = 1
METHODS = ("observation", "work_product", "witness_testimony", "professional_discussion", "questioning", "assignment")
OBSERVERS = ("assessor", "expert_witness")

Code = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9][A-Za-z0-9 ._/-]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Coded(_Strict):
    """A listed item with a stable code: a qualification, a condition."""

    code: str = Code
    title: str | None = None
    text: str | None = None


class RangeGroup(_Strict):
    """One range heading of a criterion and the items it lists."""

    term: str = Field(min_length=1)
    text: str = ""
    items: list[str] = []
    note: str | None = None


class Criterion(_Strict):
    """An assessment criterion, word for word."""

    code: str = Code
    text: str = Field(min_length=1)
    range: list[RangeGroup] = []


class Outcome(_Strict):
    """A learning outcome and its criteria."""

    number: str = Code
    title: str = Field(min_length=1)
    criteria: list[Criterion] = Field(min_length=1)


class Setting(_Strict):
    """A real work setting from the unit's range."""

    code: str = Code
    label: str = Field(min_length=1)


class AssessmentStrategy(_Strict):
    """How a unit is assessed: the facts the handbook rules check."""

    mode: Literal["portfolio", "assignment"]
    methods: list[Literal[METHODS]] = Field(min_length=1)  # type: ignore[valid-type]
    observation_required: bool = False
    observation_required_criteria: list[str] = []
    observers: list[Literal[OBSERVERS]] = []  # type: ignore[valid-type]
    rpl_allowed: bool = False
    real_work_only: bool = False
    assessor_competence: Literal["competent", "knowledgeable"] = "competent"
    assessor_qualifications: list[str] = []
    settings: list[Setting] = []
    simulation_markers: list[str] = []
    strategy_text: str = ""
    source: str = ""

    @model_validator(mode="after")
    def _observation_needs_observers(self) -> "AssessmentStrategy":
        if self.observation_required and not self.observers:
            raise ValueError("observation_required needs at least one observer role")
        if self.observation_required and "observation" not in self.methods:
            raise ValueError("observation_required needs 'observation' among the methods")
        return self


class Unit(_Strict):
    """A unit of a qualification."""

    code: str = Code
    title: str = Field(min_length=1)
    reference: str | None = None
    level: int | None = None
    credits: int | None = None
    glh: int | None = None
    aim: str = ""
    assessment: AssessmentStrategy
    outcomes: list[Outcome] = Field(min_length=1)

    @model_validator(mode="after")
    def _codes_unique(self) -> "Unit":
        _unique([o.number for o in self.outcomes], f"unit {self.code} outcome")
        codes = [c.code for o in self.outcomes for c in o.criteria]
        _unique(codes, f"unit {self.code} criterion")
        unknown = set(self.assessment.observation_required_criteria) - set(codes)
        if unknown:
            raise ValueError(f"unit {self.code}: observation_required_criteria names unknown criteria {sorted(unknown)}")
        _unique([s.code for s in self.assessment.settings], f"unit {self.code} setting")
        return self


class Qualification(_Strict):
    """A qualification and the units it is made of."""

    code: str = Code
    title: str = Field(min_length=1)
    level: int | None = None
    credits: int | None = None
    accreditation_number: str | None = None
    units: list[str] = Field(min_length=1)


class Pack(_Strict):
    """A whole spec pack, as shipped in a JSON file."""

    format: Literal[1]
    pack: str = Field(min_length=1, max_length=40, pattern=r"^[a-z0-9][a-z0-9-]*$")
    version: int = Field(ge=1)
    awarding_body: str = Field(min_length=1)
    title: str = Field(min_length=1)
    source: str = ""
    min_age: int | None = Field(default=None, ge=0, le=99)
    assessor_qualifications: list[Coded] = []
    iqa_qualifications: list[Coded] = []
    expert_witness_conditions: list[Coded] = []
    qualifications: list[Qualification] = Field(min_length=1)
    units: list[Unit] = Field(min_length=1)

    @field_validator("units")
    @classmethod
    def _unit_codes_unique(cls, units: list[Unit]) -> list[Unit]:
        _unique([u.code for u in units], "unit")
        return units

    @model_validator(mode="after")
    def _references_resolve(self) -> "Pack":
        _unique([q.code for q in self.qualifications], "qualification")
        _unique([q.code for q in self.assessor_qualifications], "assessor qualification")
        unit_codes = {u.code for u in self.units}
        for q in self.qualifications:
            missing = set(q.units) - unit_codes
            if missing:
                raise ValueError(f"qualification {q.code} names unknown units {sorted(missing)}")
        listed = {q.code for q in self.assessor_qualifications}
        for u in self.units:
            missing = set(u.assessment.assessor_qualifications) - listed
            if missing:
                raise ValueError(f"unit {u.code} names unknown assessor qualifications {sorted(missing)}")
        return self

    def unit(self, code: str) -> Unit:
        """Return the unit with this code."""
        return next(u for u in self.units if u.code == code)


def _unique(codes: list[str], what: str) -> None:
    """Refuse a list of codes with a repeat."""
    seen: set[str] = set()
    for code in codes:
        if code in seen:
            raise ValueError(f"{what} code {code!r} appears twice")
        seen.add(code)
