"""What the centre has acknowledged to a device: every receipt it keeps, checked by the device at each sync (G21).

A centre restored from a backup, or one that lost a disk, no longer holds some answers it gave. Every pull tells
the device the count and digest of the receipts kept for it; when they differ from the device's own, the device
sends the ids it holds answers for and the centre names those it has no receipt of, which the device sends again.
"""
import uuid

from sqlmodel import Session, col, select

from tracker.errors import InvalidInput
from tracker.models import Device, SyncReceipt

from .. import acknowledged_digest

MAX_CHECKED = 100_000  # ids in one check: a few months of a busy device's work


def acknowledged(session: Session, device: Device) -> dict[str, object]:
    """Return the count and digest of the receipts the centre keeps for a device."""
    ids = session.exec(select(SyncReceipt.item_id).where(SyncReceipt.device_id == device.id)).all()
    return acknowledged_digest(ids)


def missing(session: Session, device: Device, item_ids: object) -> list[str]:
    """Return, of the ids a device holds answers for, those the centre keeps no receipt of."""
    if not isinstance(item_ids, list) or len(item_ids) > MAX_CHECKED:
        raise InvalidInput(f"Send the acknowledged item ids as a list of at most {MAX_CHECKED}.", field="item_ids")
    try:
        wanted = {uuid.UUID(str(i)) for i in item_ids}
    except ValueError:
        raise InvalidInput("Every acknowledged item id must be a UUID.", field="item_ids") from None
    kept: set[uuid.UUID] = set()
    chunk = sorted(wanted)
    for start in range(0, len(chunk), 1000):  # stay within every database's limit on bound parameters
        part = chunk[start:start + 1000]
        kept.update(session.exec(select(SyncReceipt.item_id).where(SyncReceipt.device_id == device.id,
                                                                   col(SyncReceipt.item_id).in_(part))))
    return sorted(str(i) for i in wanted - kept)
