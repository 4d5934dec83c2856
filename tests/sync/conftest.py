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
