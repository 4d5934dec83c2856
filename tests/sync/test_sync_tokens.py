"""Device tokens: issued once, kept only as a hash, refused clearly when unknown, withdrawn or out of date."""
import hashlib
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlmodel import select

from sync import PROTOCOL_VERSION, SCHEMA_VERSION
from sync.centre.tokens import TokenRefused, allow_back, authenticate, issue_token, revoke
from sync_support import NOW, capture, push
from tracker.errors import InvalidInput, NotFound, NotPermitted
from tracker.models import AuditEntry, Device, Role, new_id

DAYS_90 = timedelta(days=90)


def _issue(session, user, device_id=None, name="Ann's tablet", now=NOW):  # noqa: ANN001
    return issue_token(session, user, device_id or new_id(), name, PROTOCOL_VERSION, SCHEMA_VERSION, DAYS_90, now=now)


def test_issued_token_authenticates_its_device(backend, session, factory):
    """The token shown once finds its device, which records when it was last seen."""
    assessor = factory.assessor()
    device, token = _issue(session, assessor)
    found = authenticate(session, token, NOW + timedelta(hours=1))
    assert (found.id, found.user_id, found.name) == (device.id, assessor.id, "Ann's tablet")
    assert (found.protocol_version, found.schema_version) == (PROTOCOL_VERSION, SCHEMA_VERSION)
    assert found.last_seen_at == NOW + timedelta(hours=1)
    assert found.expires_at == NOW + DAYS_90


def test_token_is_never_stored_in_clear(backend, session, factory):
    """Only the sha256 of the token is stored; the token appears in no column and no audit entry."""
    device, token = _issue(session, factory.assessor())
    session.flush()
    assert device.token_hash == hashlib.sha256(token.encode()).hexdigest() != token
    assert len(token) >= 43  # 32 random bytes
    for table in ("device", "auditentry"):
        rows = session.execute(text(f"SELECT * FROM {table}")).all()
        assert not any(token in str(value) for row in rows for value in row)


def test_registration_is_audited_with_the_device(backend, session, factory):
    """Registering a device is in the audit log, naming the device."""
    assessor = factory.assessor()
    device, _ = _issue(session, assessor)
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "device.registered")).one()
    assert (entry.actor_id, entry.device_id, entry.entity_id) == (assessor.id, device.id, str(device.id))


@pytest.mark.parametrize("token", ["", "not-a-token", None, 42])
def test_unknown_token_is_refused(backend, session, factory, token):
    """A missing or unknown token is refused as invalid, saying the queue is kept."""
    _issue(session, factory.assessor())
    with pytest.raises(TokenRefused) as refused:
        authenticate(session, token, NOW)
    assert refused.value.code == "token_invalid"
    assert "stays on the device" in refused.value.message


def test_expired_token_is_refused(backend, session, factory):
    """A token past its lifetime is refused as expired, with the day it ran out."""
    _, token = _issue(session, factory.assessor())
    authenticate(session, token, NOW + DAYS_90 - timedelta(seconds=1))
    with pytest.raises(TokenRefused) as refused:
        authenticate(session, token, NOW + DAYS_90)
    assert refused.value.code == "token_expired"
    assert (NOW + DAYS_90).strftime("%d %B %Y") in refused.value.message


def test_owner_revokes_and_the_token_stops_at_once(backend, session, factory):
    """The owner withdraws a lost device's access; the token is refused and the reason audited."""
    assessor = factory.assessor()
    device, token = _issue(session, assessor)
    revoke(session, factory.actor(assessor), device.id, "Tablet left on the bus")
    with pytest.raises(TokenRefused) as refused:
        authenticate(session, token, NOW)
    assert refused.value.code == "token_revoked"
    assert (device.revoked_by_id, device.revoked_reason) == (assessor.id, "Tablet left on the bus")
    entry = session.exec(select(AuditEntry).where(AuditEntry.action == "device.revoked")).one()
    assert (entry.actor_id, entry.entity_id, entry.details["reason"]) == (assessor.id, str(device.id),
                                                                          "Tablet left on the bus")


def test_administrator_may_revoke_and_a_second_revoke_changes_nothing(backend, session, factory):
    """An administrator withdraws anyone's device; doing it again writes nothing more."""
    device, _ = _issue(session, factory.assessor())
    revoke(session, factory.as_admin, device.id, "Assessor left the centre")
    revoke(session, factory.as_admin, device.id, "Again")
    assert device.revoked_reason == "Assessor left the centre"
    assert len(session.exec(select(AuditEntry).where(AuditEntry.action == "device.revoked")).all()) == 1


@pytest.mark.parametrize(("who", "reason", "error"), [
    pytest.param("other", "Looks lost", NotPermitted, id="another-assessor"),
    pytest.param("owner", "  ", InvalidInput, id="no-reason"),
    pytest.param("unknown-device", "Lost", NotFound, id="unknown-device"),
])
def test_revoke_refused(backend, session, factory, who, reason, error):
    """Only the owner or an administrator revokes, with a reason, a device that exists."""
    owner = factory.assessor()
    device, token = _issue(session, owner)
    actor = factory.actor(factory.assessor() if who == "other" else owner)
    with pytest.raises(error):
        revoke(session, actor, new_id() if who == "unknown-device" else device.id, reason)
    assert authenticate(session, token, NOW).revoked_at is None


def test_revoked_device_cannot_push_and_cannot_be_reissued(backend, session, factory):
    """A push from a withdrawn device is refused outright; signing in again needs a new device id."""
    assessor = factory.assessor()
    candidate = factory.candidate(assessors=(assessor,))
    device, _ = _issue(session, assessor)
    revoke(session, factory.actor(assessor), device.id, "Lost")
    with pytest.raises(TokenRefused, match="withdrawn"):
        push(session, device, assessor, [capture(factory, candidate, 1)])
    with pytest.raises(TokenRefused):
        _issue(session, assessor, device.id)
    fresh, token = _issue(session, assessor)
    assert authenticate(session, token, NOW).id == fresh.id != device.id


def test_signing_in_again_rotates_the_token(backend, session, factory):
    """A new token for the same device replaces the old one, which stops working."""
    assessor = factory.assessor()
    device, old = _issue(session, assessor)
    again, new = _issue(session, assessor, device.id, name="Ann's new name")
    assert (again.id, again.name) == (device.id, "Ann's new name")
    assert authenticate(session, new, NOW).id == device.id
    with pytest.raises(TokenRefused):
        authenticate(session, old, NOW)
    assert session.exec(select(AuditEntry.action).where(AuditEntry.entity_id == str(device.id))).all() == [
        "device.registered", "device.token_reissued"]


def test_device_id_of_another_person_is_refused(backend, session, factory):
    """A device registered to one person cannot be taken over by another's sign-in."""
    device, _ = _issue(session, factory.assessor())
    with pytest.raises(NotPermitted, match="another person"):
        _issue(session, factory.assessor(), device.id)


@pytest.mark.parametrize(("device_id", "name", "field"), [
    ("tablet-1", "Tablet", "device_id"),
    (None, "  ", "name"),
])
def test_bad_registration_is_refused(backend, session, factory, device_id, name, field):
    """A device id that is not a UUID, or a blank name, is refused naming the field."""
    with pytest.raises(InvalidInput) as refused:
        _issue(session, factory.assessor(), device_id, name=name)
    assert refused.value.field == field
    assert session.exec(select(Device)).all() == []


def test_a_device_allowed_back_signs_in_again_as_itself(backend, session, factory):
    """G23: once an administrator lifts the withdrawal, its owner's sign-in continues the same device."""
    assessor, admin = factory.assessor(), factory.user(Role.ADMINISTRATOR)
    device, old = _issue(session, assessor)
    revoke(session, factory.actor(assessor), device.id, "Left in a client's home")
    assert allow_back(session, factory.actor(admin), device.id).revoked_at is None
    with pytest.raises(TokenRefused):
        authenticate(session, old, NOW)  # the token from before the withdrawal stays dead
    again, token = _issue(session, assessor, device.id)
    assert again.id == device.id and authenticate(session, token, NOW).id == device.id
    actions = session.exec(select(AuditEntry.action).where(AuditEntry.entity_id == str(device.id))).all()
    assert "device.allowed_back" in actions


@pytest.mark.parametrize("who", ["owner", "other assessor", "unknown device"])
def test_only_an_administrator_allows_a_device_back(backend, session, factory, who):
    """The owner cannot lift a withdrawal alone; a forged device id is not found; nothing changes."""
    owner = factory.assessor()
    device, _ = _issue(session, owner)
    revoke(session, factory.actor(owner), device.id, "Lost")
    if who == "unknown device":
        with pytest.raises(NotFound):
            allow_back(session, factory.actor(factory.user(Role.ADMINISTRATOR)), new_id())
    else:
        with pytest.raises(NotPermitted):
            allow_back(session, factory.actor(owner if who == "owner" else factory.assessor()), device.id)
    assert session.get(Device, device.id).revoked_at is not None
