"""Helpers for the sync tests: items shaped as a device sends them (JSON), and row counts."""
import json
import uuid
from datetime import timedelta
from typing import Any

from sqlmodel import Session, func, select

from support.factories import NOW, TODAY
from sync import PROTOCOL_VERSION, SCHEMA_VERSION
from sync.centre.push import Verdict, apply_batch
from sync.centre.tokens import issue_token
from tracker.hashing import canonical_json
from tracker.models import AuditEntry, Device, Evidence, EvidenceVersion, Signature, SyncReceipt, User, new_id

CAPTURE_ONLY = ("id", "candidate_id", "unit", "method", "submit", "signatures")


def as_json(value: Any) -> Any:
    """Return a value as it arrives after a trip through JSON."""
    return json.loads(canonical_json(value))


def register(session: Session, user: User, name: str = "Field tablet") -> Device:
    """Register a device for a person, as the sign-in on the device does."""
    device, _token = issue_token(session, user, new_id(), name, PROTOCOL_VERSION, SCHEMA_VERSION,
                                 timedelta(days=90), now=NOW)
    return device


def item(seq: int, kind: str, payload: Any, key: Any = None) -> dict[str, Any]:
    """Return one queued item as the device sends it."""
    return {"item_id": str(key or new_id()), "seq": seq, "kind": kind, "payload": as_json(payload)}


def capture(factory, candidate, seq: int, method: str = "observation",  # noqa: ANN001
            **overrides: Any) -> dict[str, Any]:
    """Return an evidence.capture item with a device-made evidence id."""
    payload = factory.evidence_data(candidate, method, **overrides)
    payload.setdefault("id", new_id())
    return item(seq, "evidence.capture", payload)


def content(factory, candidate, method: str = "observation", **overrides: Any) -> dict[str, Any]:  # noqa: ANN001
    """Return content fields only, for a revision."""
    data = factory.evidence_data(candidate, method, **overrides)
    return {k: v for k, v in data.items() if k not in CAPTURE_ONLY}


def revise(seq: int, evidence_id: Any, base_version: int, new_content: dict, **extra: Any) -> dict[str, Any]:
    """Return an evidence.revise item."""
    return item(seq, "evidence.revise", {"evidence_id": evidence_id, "base_version": base_version,
                                         "content": new_content, **extra})


def evidence_id(captured: dict[str, Any]) -> uuid.UUID:
    """Return the evidence id a capture item carries."""
    return uuid.UUID(captured["payload"]["id"])


def item_id(pushed: dict[str, Any]) -> uuid.UUID:
    """Return the id of a pushed item."""
    return uuid.UUID(pushed["item_id"])


def push(session: Session, device: Device, user: User, items: list) -> list[Verdict]:
    """Push items from a device on the tests' fixed today."""
    return apply_batch(session, device, user, items, TODAY)


def verdicts(answers: list[Verdict]) -> list[str]:
    """Return the verdicts alone, in order."""
    return [a.verdict for a in answers]


def count(session: Session, model: type, *where: Any) -> int:
    """Count a table's rows, optionally filtered."""
    session.flush()
    return session.exec(select(func.count()).select_from(model).where(*where)).one()


def snapshot(session: Session) -> dict[str, int]:
    """Count the rows a push can write."""
    return {m.__name__: count(session, m) for m in (Evidence, EvidenceVersion, Signature, SyncReceipt, AuditEntry)}
