"""Read models kept in memory until the audit log shows a change that could alter them.

Every write is audited in its own transaction, and audit entries are numbered in commit order, so the newest
entry's number (for the whole centre, or for one candidate) is a stamp that moves whenever the data behind a
page may have changed. A page reads its stamp with one small query and rebuilds only when it has moved.
"""
import threading
import uuid
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from sqlalchemy import func
from sqlmodel import Session, select

from .models import AuditEntry, AuditHead, Evidence

T = TypeVar("T")


class ReadCache:
    """A bounded, thread-safe, least-recently-used store of read models, each valid for one stamp."""

    def __init__(self, size: int = 512):
        self.size = size
        self._items: OrderedDict[Hashable, tuple[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, stamp: Any, build: Callable[[], T]) -> T:
        """Return the model kept for key if it was built at this stamp; otherwise build and keep it."""
        with self._lock:
            kept = self._items.get(key)
            if kept is not None and kept[0] == stamp:
                self._items.move_to_end(key)
                return kept[1]
        # Built outside the lock: the stamp was read first, so the data is at least as new as the stamp says.
        value = build()
        with self._lock:
            self._items[key] = (stamp, value)
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


    def clear(self) -> None:
        """Forget every kept model."""
        with self._lock:
            self._items.clear()


def centre_stamp(session: Session) -> int:
    """Return the number of the newest audit entry in the centre."""
    return session.exec(select(AuditHead.seq).where(AuditHead.id == 1)).one()


def evidence_stamp(session: Session, evidence_id: uuid.UUID) -> int | None:
    """Return the number of the newest audit entry about the candidate a piece of evidence belongs to."""
    newest = (select(func.max(AuditEntry.seq)).where(AuditEntry.candidate_id == Evidence.candidate_id)
              .scalar_subquery())
    return session.exec(select(newest).where(Evidence.id == evidence_id)).one_or_none()
