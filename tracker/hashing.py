"""Canonical content hashes: the same content always gives the same hash."""
import hashlib
import json
import re
import unicodedata
import uuid
from datetime import date, datetime
from typing import Any


def _normalise(value: Any) -> Any:
    """Turn a value into plain JSON data in one canonical form."""
    if isinstance(value, str):
        # Line endings and Unicode forms differ between devices and browsers.
        return unicodedata.normalize("NFC", value.replace("\r\n", "\n").replace("\r", "\n"))
    if isinstance(value, dict):
        return {str(k): _normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalise(v) for v in value]
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    return value


def canonical_json(value: Any) -> str:
    """Serialise with sorted keys, no spaces and normalised text."""
    # Most content is plain ASCII with string keys, which normalising leaves as it is: serialise it directly, and
    # walk the value only when the text shows something normalising could change (a carriage return, a non-ASCII
    # character, or a key JSON would spell differently from str(): true, false, null).
    try:
        text = _DIRECT.encode(value)
    except (TypeError, ValueError):
        text = None
    if text is not None and text.isascii() and "\\r" not in text and not _ODD_KEY.search(text):
        return text
    return _PLAIN.encode(_normalise(value))


_ODD_KEY = re.compile(r'"(?:true|false|null)":')


def _scalar(value: Any) -> str:
    """Spell a date, time or uuid as normalising does; refuse anything else, as json.dumps would."""
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")


# The encoders json.dumps would make on every call with these arguments, made once (they keep no state).
_DIRECT = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=_scalar)
_PLAIN = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(value: Any) -> str:
    """Return the sha256 hex digest of the canonical JSON of a value."""
    return text_hash(canonical_json(value))


def text_hash(text: str) -> str:
    """Return the sha256 hex digest of canonical JSON already made."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
