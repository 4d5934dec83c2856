"""Form state for pages: what was typed, and each refusal shown next to the field that caused it."""
from dataclasses import dataclass, field
from typing import Any

from werkzeug.datastructures import MultiDict

from ..errors import Refusal


@dataclass
class Form:
    """The values a form shows and the messages beside its fields."""

    values: MultiDict = field(default_factory=MultiDict)
    errors: dict[str, str] = field(default_factory=dict)
    summary: str | None = None

    def get(self, name: str, default: Any = "") -> Any:
        """Return a field's value as typed."""
        return self.values.get(name, default)

    def getlist(self, name: str) -> list[str]:
        """Return all values of a repeated field."""
        return self.values.getlist(name)

    def refuse(self, refusal: Refusal, fields: dict[str, str] | None = None) -> "Form":
        """Put a refusal beside the field it names (mapped to the form's own names), or at the top."""
        name = (fields or {}).get(refusal.field or "", refusal.field)
        if name and name in self.known:
            self.errors[name] = refusal.message
        self.summary = refusal.message
        return self

    @property
    def known(self) -> set[str]:
        """Return the names of fields this form has."""
        return set(self.values.keys()) | set(self.extra)

    extra: tuple[str, ...] = ()


def form_from(values: MultiDict | None = None, *fields: str) -> Form:
    """Start a form from submitted values, knowing its field names even when they were left empty."""
    form = Form(MultiDict(values or {}))
    form.extra = fields
    return form
