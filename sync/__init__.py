"""Field sync between an assessor's offline device and the centre (framework-free).

`sync.centre` is the centre's side of the protocol, `sync.device` the device's; both use the tracker's core
(models, services, rules) and neither imports Flask or the web layer.
"""
import hashlib
from collections.abc import Iterable

PROTOCOL_VERSION = 1  # the push/pull protocol this server speaks
MAX_SEQ = 2**53 - 1  # the largest item number: exact in every client's numbers, a tablet's JavaScript included
SCHEMA_VERSION = "0012"  # the newest migration, which devices name so the server can answer "upgrade required"


def acknowledged_digest(item_ids: Iterable[object]) -> dict[str, object]:
    """Return the count and digest of a set of item ids, computed the same way on both sides (G21)."""
    ids = sorted({str(i) for i in item_ids})
    return {"count": len(ids), "digest": hashlib.sha256("\n".join(ids).encode("ascii")).hexdigest()}
