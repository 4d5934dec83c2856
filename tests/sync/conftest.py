"""Fixtures for the sync tests: an assessor in the field with a candidate and a registered device."""
from types import SimpleNamespace

import pytest

from sync_support import register


@pytest.fixture
def field(backend, session, factory):
    """An eligible assessor, their candidate, and the assessor's registered device."""
    assessor = factory.assessor(name="Ann Assessor")
    candidate = factory.candidate(assessors=(assessor,))
    return SimpleNamespace(assessor=assessor, candidate=candidate, device=register(session, assessor))


# --- Field devices (the device side of sync) -----------------------------------------------------------------


@pytest.fixture
def tablet(field, session, tmp_path):
    """The assessor's field device: its own SQLite file, enrolled, first pull applied, talking to the centre."""
    from device_support import InProcessCentre, make_device
    from support.factories import TODAY
    from sync.device.client import Client
    from tracker.storage import LocalStorage

    session.commit()
    engine = make_device(tmp_path, session, field.device)
    centre = InProcessCentre(session.get_bind(), field.device.id, TODAY)
    storage = LocalStorage(tmp_path / "device" / "media")
    yield SimpleNamespace(engine=engine, centre=centre, storage=storage,
                          client=lambda transport=None: Client(engine, storage, transport or centre, "token"))
    engine.dispose()


@pytest.fixture
def centre(app):
    """The centre's app served over real HTTP on 127.0.0.1; yields its base URL."""
    from api_support import serve

    with serve(app) as base:
        yield base


@pytest.fixture
def device(centre):
    """A fresh field device pointed at the served centre (not signed in yet)."""
    from api_support import Device

    return Device(centre)
