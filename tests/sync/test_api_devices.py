"""The sync API's front door over real HTTP: hello, versions (G17, test 11), signing a device in, its token (test 10)."""
import uuid
from datetime import timedelta

import pytest
from sqlmodel import select

from api_support import Device
from sync import SCHEMA_VERSION
from sync.centre.tokens import revoke
from tracker.models import AuditEntry, Role, utcnow
from tracker.models import Device as DeviceRow


def test_hello_names_protocols_schema_and_limits(device):
    """A device learns what the centre speaks and its size limits before sending anything."""
    answer = device.get("/api/v1/hello")
    assert answer.status_code == 200
    body = answer.json()
    assert body["protocols"] == [1] and body["schema"] == SCHEMA_VERSION
    assert set(body["limits"]) == {"image", "document", "audio", "video", "part", "batch_items"}
    assert body["limits"]["image"] == 25 * 1024 * 1024


@pytest.mark.parametrize(("protocol", "schema"), [("2", SCHEMA_VERSION), ("", SCHEMA_VERSION), ("1", "9999"),
                                                  ("1", ""), ("1", "latest"), ("one", "0001")])
def test_unknown_protocol_or_future_schema_is_told_to_upgrade(centre, protocol, schema):
    """Test 11: an unknown protocol or a newer schema gets 426 upgrade_required, as JSON, on every route."""
    device = Device(centre, protocol=protocol, schema=schema)
    for answer in (device.get("/api/v1/hello"), device.push([]), device.pull(),
                   device.post("/api/v1/devices", {})):
        assert answer.status_code == 426
        assert answer.headers["Content-Type"].startswith("application/json")
        body = answer.json()
        assert body["error"] == "upgrade_required" and body["protocols"] == [1] and body["schema"] == SCHEMA_VERSION
        assert "stays on the device" in body["message"]


def test_older_schema_is_accepted(centre, session, factory):
    """Schema changes are additive: a device on an older migration signs in and pushes."""
    assessor = factory.assessor()
    session.commit()
    device = Device(centre, schema="0001")
    assert device.get("/api/v1/hello").status_code == 200
    assert device.enrol(assessor).status_code == 201
    assert session.get(DeviceRow, uuid.UUID(device.device_id)).schema_version == "0001"


@pytest.mark.parametrize("role", ["assessor", "expert_witness"])
def test_field_staff_sign_in_and_get_a_token(device, session, factory, role):
    """Enrol: 201 with the token, the device id and who signed in; the device is registered and audited."""
    user = factory.assessor() if role == "assessor" else factory.expert_witness()
    session.commit()
    answer = device.enrol(user, name="Ann's tablet")
    assert answer.status_code == 201, answer.text
    body = answer.json()
    assert body["device_id"] == device.device_id
    assert body["user"] == {"id": str(user.id), "name": user.name, "email": user.email}
    assert len(body["token"]) >= 40 and body["expires_at"]
    session.expire_all()
    row = session.get(DeviceRow, uuid.UUID(device.device_id))
    assert row.user_id == user.id and row.name == "Ann's tablet" and row.token_hash != body["token"]
    assert session.exec(select(AuditEntry).where(AuditEntry.action == "device.registered")).one()
    assert device.pull().status_code == 200  # the token works


def test_wrong_password_or_unknown_person_is_401(device, session, factory):
    """Wrong credentials get 401 bad_credentials and no device is registered."""
    assessor = factory.assessor()
    session.commit()
    for answer in (device.enrol(assessor, password="wrong"),
                   device.post("/api/v1/devices", {"email": "nobody@centre.test", "password": "x",
                                                   "device_id": device.device_id, "name": "T"})):
        assert answer.status_code == 401
        assert answer.json()["error"] == "bad_credentials"
    assert session.exec(select(DeviceRow)).all() == []


@pytest.mark.parametrize("roles", [(Role.CANDIDATE,), (Role.IQA,), (Role.WITNESS,), (Role.ADMINISTRATOR,), ()])
def test_people_without_a_field_role_are_refused(device, session, factory, roles):
    """Only assessors and expert witnesses can use the field app: 403, nothing registered."""
    user = factory.user(*roles)
    session.commit()
    answer = device.enrol(user)
    assert answer.status_code == 403
    assert answer.json()["error"] == "not_permitted"
    assert session.exec(select(DeviceRow)).all() == []


@pytest.mark.parametrize("body", [None, [], "text", {"email": "a@b.c"}, {"email": 1, "password": [], "device_id": {},
                                  "name": None}, {"email": "x", "password": "y", "device_id": "not-a-uuid",
                                                  "name": "T"}])
def test_malformed_enrolment_is_a_clear_400(device, session, factory, body):
    """Missing or wrong-typed fields: a JSON 400, never a 500."""
    factory.assessor()
    session.commit()
    answer = device.post("/api/v1/devices", body)
    assert answer.status_code in (400, 401)
    assert answer.json()["error"] in ("invalid_input", "bad_credentials")


def test_bad_device_id_for_a_real_person_is_400(device, session, factory):
    """A good password with a device id that is not a UUID: 400 naming the field."""
    assessor = factory.assessor()
    session.commit()
    answer = device.post("/api/v1/devices", {"email": assessor.email, "password": "correct horse battery",
                                             "device_id": "not-a-uuid", "name": "T"})
    assert answer.status_code == 400
    assert answer.json()["field"] == "device_id"


def test_enrolment_is_rate_limited(device, session, factory):
    """Guessing passwords is slowed: after 10 tries a minute, 429 as JSON."""
    assessor = factory.assessor()
    session.commit()
    statuses = [device.enrol(assessor, password=f"guess {i}").status_code for i in range(11)]
    assert statuses[:10] == [401] * 10
    assert statuses[10] == 429
    answer = device.enrol(assessor)
    assert answer.status_code == 429 and answer.json()["error"] == "rate_limited"


@pytest.mark.parametrize("header", [None, "Bearer", "Bearer nonsense", "Basic abc", "bearer "])
def test_missing_or_unknown_token_is_401_token_invalid(device, header):
    """No token or an unknown one: 401 token_invalid, with a plain message."""
    headers = {"Authorization": header} if header else {}
    for answer in (device.get("/api/v1/pull", headers=headers), device.post("/api/v1/push", {"items": []},
                                                                            headers=headers)):
        assert answer.status_code == 401
        assert answer.json()["error"] == "token_invalid"
        assert "Sign in again" in answer.json()["message"]


def test_revoked_token_gets_a_clear_401(device, session, factory):
    """Test 10: a revoked device is answered 401 token_revoked on push and pull, and nothing is applied."""
    from sync_support import capture

    assessor = factory.assessor()
    candidate = factory.candidate(assessors=(assessor,))
    session.commit()
    device.enrol(assessor)
    revoke(session, factory.as_admin, device.device_id, "Tablet lost on the bus")
    session.commit()
    before = session.exec(select(AuditEntry)).all()
    for answer in (device.pull(), device.push([capture(factory, candidate, 1)])):
        assert answer.status_code == 401
        assert answer.json()["error"] == "token_revoked"
        assert "stays on the device" in answer.json()["message"]
    assert len(session.exec(select(AuditEntry)).all()) == len(before)


def test_expired_token_gets_a_clear_401(device, session, factory):
    """An expired token: 401 token_expired."""
    assessor = factory.assessor()
    session.commit()
    device.enrol(assessor)
    row = session.get(DeviceRow, uuid.UUID(device.device_id))
    row.expires_at = utcnow() - timedelta(minutes=1)
    session.add(row)
    session.commit()
    answer = device.pull()
    assert answer.status_code == 401 and answer.json()["error"] == "token_expired"


def test_unknown_api_address_and_wrong_method_answer_json(device):
    """Errors under /api are JSON, never an HTML page."""
    for answer, status in ((device.get("/api/v1/nothing-here"), 404), (device.get("/api/v1/push"), 405)):
        assert answer.status_code == status
        assert answer.headers["Content-Type"].startswith("application/json")
        assert answer.json()["error"]
