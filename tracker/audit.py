"""Writing to the append-only audit log, in the same transaction as the change it records."""
import uuid
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlmodel import Session

from .hashing import _normalise
from .models import AuditEntry, User


@dataclass(frozen=True)
class Actor:
    """Who is acting, from which device, and on what day (the rules' notion of today)."""

    user: User | None
    device_id: uuid.UUID | None = None
    today: date = field(default_factory=date.today)

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
    """Append an audit entry for a change to an entity."""
    entity_id = getattr(entity, "id", None) or getattr(entity, "key", None) or getattr(entity, "sha256", None)
    entry = AuditEntry(
        actor_id=actor.id, device_id=actor.device_id, action=action,
        entity_type=type(entity).__name__.lower(), entity_id=str(entity_id), details=_normalise(details),
    )
    session.add(entry)
    return entry
