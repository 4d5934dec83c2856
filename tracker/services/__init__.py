"""The portfolio's operations: each checks permissions and the handbook rules, writes, and audits."""
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import InvalidInput

T = TypeVar("T", bound=BaseModel)


def validate(model: type[T], data: object) -> T:
    """Validate input into a model, turning the first problem into a clear refusal naming the field."""
    if isinstance(data, model):
        return data
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        if first["type"] in ("model_type", "model_attributes_type", "dict_type"):
            raise InvalidInput("The input must be a set of named fields.", field=None) from None
        field = ".".join(str(p) for p in first["loc"]) or None
        label = (field or "input").replace("_", " ")
        message = _plain(first["msg"])
        joiner = " " if message.startswith("should") else ": "
        raise InvalidInput(f"{label.capitalize()}{joiner}{message}.", field=field) from None


def _plain(message: str) -> str:
    """Make pydantic's messages read as sentences for people."""
    return message.replace("Input should be", "should be").replace("String should", "should").rstrip(".")
