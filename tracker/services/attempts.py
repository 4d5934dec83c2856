"""Sign-in attempts, counted in the database so every server process slows password guessing alike.

Two allowances: every attempt from one client address (ten a minute, fifty an hour), and failed attempts at one
account from anywhere (ten in fifteen minutes), so a second address gets no more tries at the same account. The
account is named by the sha256 of the email address as typed, known or not, so the answer is the same for both.
"""
import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete
from sqlmodel import Session, col, select

from .. import clock
from ..models import SignInAttempt


@dataclass(frozen=True)
class Allowance:
    """At most `limit` attempts in `window` (failed ones only, when `failures`)."""

    column: str  # "address" or "account"
    limit: int
    window: timedelta
    failures: bool = False


ALLOWANCES = (Allowance("address", 10, timedelta(minutes=1)), Allowance("address", 50, timedelta(hours=1)),
              Allowance("account", 10, timedelta(minutes=15), failures=True))
KEPT = timedelta(days=1)  # longer than any window


def account_key(email: object) -> str:
    """Return the name an account's attempts are counted under: the hash of the address typed, normalised."""
    typed = email if isinstance(email, str) else ""
    folded = unicodedata.normalize("NFC", typed.strip().lower())
    return hashlib.sha256(folded.encode("utf-8", "surrogatepass")).hexdigest()


def _address(address: str | None) -> str:
    return (address or "unknown")[:64]


def wait(session: Session, address: str | None, email: object, now: datetime | None = None) -> int:
    """Return how many seconds to wait before the next attempt from this address at this account (0: go ahead)."""
    now = now or clock.now()
    keys = {"address": _address(address), "account": account_key(email)}
    longest = 0
    for allowance in ALLOWANCES:
        column = getattr(SignInAttempt, allowance.column)
        query = select(SignInAttempt.at).where(column == keys[allowance.column],
                                               SignInAttempt.at > now - allowance.window)
        if allowance.failures:
            query = query.where(col(SignInAttempt.failed).is_(True))
        # The oldest of the last `limit` attempts: once it leaves the window, there is room for one more.
        oldest = session.exec(query.order_by(col(SignInAttempt.at).desc()).offset(allowance.limit - 1)
                              .limit(1)).first()
        if oldest is not None:
            longest = max(longest, int((clock.aware(oldest) + allowance.window - now).total_seconds()) + 1)
    return longest


def note(session: Session, address: str | None, email: object, *, failed: bool) -> None:
    """Count an attempt (the caller commits), and forget attempts older than any window."""
    now = clock.now()
    session.execute(delete(SignInAttempt).where(SignInAttempt.at < now - KEPT))
    session.add(SignInAttempt(address=_address(address), account=account_key(email), failed=failed, at=now))
    session.flush()
