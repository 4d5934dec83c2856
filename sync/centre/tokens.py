"""Device tokens: shown once when issued, stored only as a sha256 hash, checked on every request, revocable."""
import hashlib
import secrets
import uuid
from datetime import datetime, timedelta

from sqlmodel import Session, select

from tracker import clock
from tracker.audit import Actor, record
from tracker.errors import InvalidInput, NotFound, NotPermitted, Refusal
from tracker.models import Device, Role, User, utcnow
from tracker.services.inputs import NIL_IDS, text

UNSENT_KEPT = "Everything waiting to be sent stays on the device."


class TokenRefused(Refusal):
    """A sync request whose device token is unknown, withdrawn or out of date."""

    kind = "unauthenticated"


def token_hash(token: str) -> str:
    """Return the sha256 hex digest under which a token is stored."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue_token(session: Session, user: User, device_id: uuid.UUID | str, name: str, protocol_version: int,
                schema_version: str, lifetime: timedelta, *, now: datetime | None = None) -> tuple[Device, str]:
    """Register a device for a person, or give their device a fresh token; return the token, shown only now."""
    now = now or utcnow()
    device_id, name = _device_id(device_id), _name(name)
    if not user.active:
        raise NotPermitted("This account has been closed, so it cannot sign in on a device.")
    device = session.get(Device, device_id)
    _check_reissue(device, user)
    token = secrets.token_urlsafe(32)
    action = "device.registered" if device is None else "device.token_reissued"
    device = device or Device(id=device_id, user_id=user.id)
    device.name, device.token_hash, device.expires_at = name, token_hash(token), now + lifetime
    device.protocol_version, device.schema_version = protocol_version, schema_version
    session.add(device)
    session.flush()
    record(session, Actor(user, device_id=device.id, today=clock.day_of(now)), action, device, name=name,
           expires_at=device.expires_at, protocol_version=protocol_version, schema_version=schema_version)
    return device, token


def _device_id(value: uuid.UUID | str) -> uuid.UUID:
    try:
        device_id = value if isinstance(value, uuid.UUID) else uuid.UUID(str(value))
    except ValueError:
        device_id = None
    if device_id is None or device_id in NIL_IDS:
        raise InvalidInput("The device id must be the UUID the device made for itself.", field="device_id")
    return device_id


def _name(value: str) -> str:
    name = text(value, "name", max_length=200, label="device's name", multiline=False)
    if not name:
        raise InvalidInput("Give the device a name of up to 200 characters, such as \"Sam's tablet\".", field="name")
    return name


def _check_reissue(device: Device | None, user: User) -> None:
    """Refuse a token for a device that belongs to someone else or has had its access withdrawn."""
    if device is None:
        return
    if device.user_id != user.id:
        raise NotPermitted("This device is registered to another person. Reset the app on it before signing in.",
                           code="device_of_another_person")
    if device.revoked_at is not None:
        # A withdrawn device stays withdrawn (it may have been lost) until an administrator allows it back; its
        # queue waits on it meanwhile, under the same identity (G23).
        raise revoked_refusal(device)


def authenticate(session: Session, token: str, now: datetime) -> Device:
    """Return the device a bearer token belongs to, or refuse with the reason."""
    # Looking the token up by its hash means no comparison ever runs over the secret itself.
    device = session.exec(select(Device).where(Device.token_hash == token_hash(token))).first() \
        if isinstance(token, str) and token else None
    if device is None:
        raise TokenRefused("token_invalid", "The centre does not recognise this device's sign-in. Sign in again on "
                                            f"the device. {UNSENT_KEPT}")
    if device.revoked_at is not None or not session.get(User, device.user_id).active:
        raise revoked_refusal(device)
    if device.expires_at <= now:
        raise TokenRefused("token_expired", f"This device's sign-in ran out on {device.expires_at:%d %B %Y}. Sign in "
                                            f"again on the device. {UNSENT_KEPT}")
    device.last_seen_at = now
    session.add(device)
    return device


def revoked_refusal(device: Device) -> TokenRefused:
    """Return the refusal for a device whose access has been withdrawn."""
    when = f" on {device.revoked_at:%d %B %Y}" if device.revoked_at else ""
    return TokenRefused("token_revoked", f"This device's access to the centre was withdrawn{when}. {UNSENT_KEPT} "
                                         "Ask your centre administrator to allow it back, then sign in again.")


def revoke(session: Session, actor: Actor, device_id: uuid.UUID | str, reason: str) -> Device:
    """Withdraw a device's access at once, with a reason kept in the audit log (its owner or an administrator)."""
    device = session.get(Device, _device_id(device_id))
    if device is None:
        raise NotFound("device")
    if actor.id != device.user_id and Role.ADMINISTRATOR not in actor.roles:
        raise NotPermitted("Only the device's owner or an administrator can withdraw its access.")
    reason = text(reason, "reason", max_length=500, label="reason for withdrawing the device's access")
    if not reason:
        raise InvalidInput("Give the reason for withdrawing the device's access (up to 500 characters).",
                           field="reason")
    if device.revoked_at is not None:
        return device  # already withdrawn: nothing changes, so nothing more is audited
    device.revoked_at, device.revoked_by_id, device.revoked_reason = utcnow(), actor.id, reason
    session.add(device)
    record(session, actor, "device.revoked", device, reason=reason, owner=str(device.user_id))
    return device


def allow_back(session: Session, actor: Actor, device_id: uuid.UUID | str) -> Device:
    """Lift a withdrawal (the tablet was found): its owner signs in again and its queue goes on, as the same
    device (G23). Only an administrator; audited."""
    device = session.get(Device, _device_id(device_id))
    if device is None:
        raise NotFound("device")
    if Role.ADMINISTRATOR not in actor.roles:
        raise NotPermitted("Only an administrator can allow a withdrawn device back.")
    if device.revoked_at is None:
        return device
    device.revoked_at = device.revoked_by_id = device.revoked_reason = None
    # The old token stays unusable: its owner signs in again, which issues a new one.
    device.token_hash = token_hash(secrets.token_urlsafe(32))
    session.add(device)
    record(session, actor, "device.allowed_back", device, owner=str(device.user_id))
    return device
