"""The OpenAPI document is true to the server: every /api route documented, and a fuzz finds no 500 and no
answer outside the document (schemathesis against the app served on 127.0.0.1)."""
import re

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api_support import Device
from tracker.web import openapi

BACKENDS = ("sqlite",)  # the fuzz checks the HTTP layer; the database paths run on both engines elsewhere
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


def _openapi_path(rule: str) -> str:
    return re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule)


def test_every_api_route_is_documented(app):
    """Each route and method under /api in the app's URL map appears in the document, and nothing else does."""
    served = {(_openapi_path(rule.rule), method.lower()) for rule in app.url_map.iter_rules()
              if rule.rule.startswith("/api") for method in rule.methods - {"HEAD", "OPTIONS"}}
    documented = {(path, method) for path, item in openapi.document()["paths"].items() for method in item}
    assert served == documented


def test_document_is_served(device):
    """GET /api/openapi.json returns the document, version 3.1."""
    answer = device.get("/api/openapi.json")
    assert answer.status_code == 200 and answer.json()["openapi"].startswith("3.1")
    assert answer.json() == openapi.document()


@pytest.fixture
def fuzz_device(centre, session, factory):
    """A signed-in assessor's device with a caseload, so authenticated operations reach real data."""
    assessor = factory.assessor()
    candidate = factory.candidate(assessors=(assessor,))
    factory.capture(assessor, candidate, "observation")
    session.commit()
    device = Device(centre)
    assert device.enrol(assessor).status_code == 201
    return device


SETTINGS = settings(max_examples=30, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))


def test_fuzz_every_operation(centre, fuzz_device):
    """Generated requests for every documented operation: never a 500, every answer as the document says."""
    schema = schemathesis.openapi.from_url(f"{centre}/api/openapi.json")
    headers = {"Authorization": f"Bearer {fuzz_device.token}"}
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {o.label for o in operations} == {f"{m.upper()} {p}" for p, item in openapi.document()["paths"].items()
                                             for m in item} - {"GET /api/openapi.json"}  # served above

    for operation in operations:
        @SETTINGS
        @given(case=operation.as_strategy())
        def run(case) -> None:  # noqa: ANN001
            case.call_and_validate(base_url=centre, headers=headers, checks=CHECKS)

        run()
