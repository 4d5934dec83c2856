"""Writing to the append-only audit log, in the same transaction as the change it records, and checking its chain."""
import hashlib
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, select

from . import clock
from .db import insert_many
from .hashing import _normalise, canonical_json
from .models import AuditEntry, AuditHead, User, utcnow

GENESIS = "0" * 64  # the prev_hash of the first entry


@dataclass(frozen=True)
class Actor:
    """Who is acting, from which device, and on what day (the rules' notion of today)."""

    user: User | None
    device_id: uuid.UUID | None = None
    today: date = field(default_factory=clock.today)
    # The last day an activity may be dated: today, unless a field device judges by the centre's clock as last
    # learned, with a day's leeway, and leaves the final word to the centre (G24).
    latest_activity: date | None = None

    @property
    def roles(self) -> frozenset[str]:
        """Return the acting person's roles (none for the system itself)."""
        return self.user.role_names if self.user else frozenset()

    @property
    def name(self) -> str:
        """Return the acting person's name."""
        return self.user.name if self.user else "the tracker"

    @property
    def id(self) -> uuid.UUID | None:
        """Return the acting person's id."""
        return self.user.id if self.user else None


SYSTEM = Actor(None)


def record(session: Session, actor: Actor, action: str, entity: Any, **details: Any) -> AuditEntry:
    """Append an audit entry for a change to an entity, chained to the entry before it."""
    entity_id = getattr(entity, "id", None) or getattr(entity, "key", None) or getattr(entity, "sha256", None)
    clean = _normalise(details)
    candidate = _candidate_of(entity, clean)
    seq, prev = _take_head(session, 1)
    entry = AuditEntry(**_entry(actor, action, type(entity).__name__.lower(), entity_id, candidate, clean, seq, prev))
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=entry.hash))
    session.add(entry)
    return entry


@dataclass(frozen=True)
class Change:
    """One change to record with ``record_many``: what was done to which entity, about which candidate."""

    action: str
    entity_type: str
    entity_id: Any
    candidate_id: uuid.UUID | None
    details: dict[str, Any]


def record_many(session: Session, actor: Actor, changes: list[Change]) -> list[dict[str, Any]]:
    """Append entries for several changes at once, in order: the head taken once, the links made in memory and
    the entries inserted in one statement (a device's batch of evidence)."""
    if not changes:
        return []
    last, prev = _take_head(session, len(changes))
    rows = []
    for seq, change in enumerate(changes, start=last - len(changes) + 1):
        rows.append(_entry(actor, change.action, change.entity_type, change.entity_id, change.candidate_id,
                           _normalise(change.details), seq, prev))
        prev = rows[-1]["hash"]
    session.execute(update(AuditHead).where(AuditHead.id == 1).values(hash=prev))
    insert_many(session, AuditEntry.__table__, rows)
    return rows


def turn(session: Session) -> None:
    """Take this transaction's turn as the audit chain's only writer now, before reading what a change decides on.

    Every change is audited, so changes already take turns once they record their entry; taking the turn first
    makes a second request deciding the same thing (a double click, a colleague at the same moment) wait for the
    first to commit and then decide on what it did. Taking it first in every change keeps one lock order, so no
    two requests ever wait for each other.
    """
    _take_head(session, 0)


def _take_head(session: Session, count: int) -> tuple[int, str]:
    """Move the chain's head on by ``count`` entries; return the new last seq and the hash the first follows."""
    # Taking the head first makes this transaction the chain's only writer until it commits, so seq is in
    # commit order (a device's pull cursor can never skip an entry committed late).
    return tuple(session.execute(
        update(AuditHead).where(AuditHead.id == 1).values(seq=AuditHead.seq + count)
        .returning(AuditHead.seq, AuditHead.hash)
    ).one())


def _entry(actor: Actor, action: str, entity_type: str, entity_id: Any, candidate_id: uuid.UUID | None,
           details: dict[str, Any], seq: int, prev: str) -> dict[str, Any]:
    """Return an entry's columns, its hash included."""
    row = {"seq": seq, "at": utcnow(), "actor_id": actor.id, "device_id": actor.device_id, "action": action,
           "entity_type": entity_type, "entity_id": str(entity_id), "candidate_id": candidate_id,
           "details": details, "prev_hash": prev}
    row["hash"] = _hash(row)
    return row


def _candidate_of(entity: Any, details: dict[str, Any]) -> uuid.UUID | None:
    """Return the candidate a change concerns: named in the details, or the entity's own candidate."""
    named = details.get("candidate") or getattr(entity, "candidate_id", None)
    if named is None and type(entity).__name__ == "Candidate":
        named = entity.id
    try:
        return uuid.UUID(str(named)) if named else None
    except ValueError:
        return None


def _utc(moment: datetime) -> str:
    """Return a moment as UTC ISO text; naive moments read back from SQLite are UTC."""
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC).isoformat(
        timespec="microseconds")


def entry_hash(entry: AuditEntry) -> str:
    """Return the sha256 of an entry's canonical content and the hash it follows."""
    return _hash({name: getattr(entry, name) for name in HASHED})


HASHED = ("seq", "at", "actor_id", "device_id", "action", "entity_type", "entity_id", "candidate_id", "details",
          "prev_hash")


def _hash(row: dict[str, Any]) -> str:
    content = {name: row[name] for name in HASHED} | {"at": _utc(row["at"])}
    return hashlib.sha256(canonical_json(content).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ChainCheck:
    """The result of checking the audit chain: how many entries, and the first broken link if any."""

    entries: int
    broken_at: int | None = None  # the seq of the first entry that does not check out
    reason: str | None = None

    @property
    def intact(self) -> bool:
        """Return whether every link checks out."""
        return self.broken_at is None


def check_chain(entries: Iterable[AuditEntry], head: AuditHead | None = None) -> ChainCheck:
    """Walk entries in seq order and report the first one whose number, link or hash is wrong."""
    expected_seq, prev, count = 1, GENESIS, 0
    for entry in entries:
        count += 1
        if entry.seq != expected_seq:
            return ChainCheck(count, expected_seq, f"entry {expected_seq} is missing (found {entry.seq} next)")
        if entry.prev_hash != prev:
            return ChainCheck(count, entry.seq, f"entry {entry.seq} does not follow entry {entry.seq - 1}")
        if entry_hash(entry) != entry.hash:
            return ChainCheck(count, entry.seq, f"entry {entry.seq} ({entry.action}) has been changed")
        expected_seq, prev = entry.seq + 1, entry.hash
    if head is not None and (head.seq != expected_seq - 1 or head.hash != prev):
        return ChainCheck(count, expected_seq, f"entries after {expected_seq - 1} are missing")
    return ChainCheck(count)


def verify(session: Session) -> ChainCheck:
    """Check this database's whole audit chain against its head."""
    return check_chain(_in_pages(session), session.get(AuditHead, 1))


def _in_pages(session: Session, size: int = 1000) -> Iterator[AuditEntry]:
    """Yield every entry in seq order, a page at a time, so a long log never sits in memory at once."""
    after = 0
    while page := list(session.exec(select(AuditEntry).where(AuditEntry.seq > after)
                                    .order_by(AuditEntry.seq).limit(size))):
        yield from page
        after = page[-1].seq
        for entry in page:
            session.expunge(entry)
