"""Canonical content hashes: the same content always gives the same hash."""
import hashlib
import json
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
    return json.dumps(_normalise(value), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def content_hash(value: Any) -> str:
    """Return the sha256 hex digest of the canonical JSON of a value."""
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()
