"""The portfolio's operations: each checks permissions and the handbook rules, writes, and audits."""
from collections.abc import Callable, Hashable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import InvalidInput, InvalidText

T = TypeVar("T", bound=BaseModel)
V = TypeVar("V")


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
        joiner = " " if message.startswith(("should", "contains", "cannot")) else ": "
        refusal = InvalidText if first["type"] == "invalid_text" else InvalidInput
        raise refusal(f"{label.capitalize()}{joiner}{message}.", field=field) from None


def _plain(message: str) -> str:
    """Make pydantic's messages read as sentences for people."""
    return message.replace("Input should be", "should be").replace("String should", "should").removeprefix(
        "Value error, ").rstrip(".")


@contextmanager
def steady(session: object) -> Iterator[None]:
    """Remember the facts the rules read (candidates, units, criteria, credentials, assignments, sign-offs) for a
    block that changes none of them, such as a device's batch of evidence: each is then read once, not per item."""
    session.info["steady"] = {}
    try:
        yield
    finally:
        session.info.pop("steady", None)


def remembered(session: object, key: Hashable, load: Callable[[], V]) -> V:
    """Return a fact from the steady block's memory, loading it the first time; outside one, just load it."""
    memory = session.info.get("steady")
    if memory is None:
        return load()
    if key not in memory:
        memory[key] = load()
    return memory[key]
