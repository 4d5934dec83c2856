"""The OpenAPI document is true to the server: every /api route documented, and schemathesis with every check on
finds no failure (in process, against the WSGI app)."""
import re
import uuid

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config import SchemathesisConfig

from api_support import Device
from sync import SCHEMA_VERSION
from tracker.web import openapi

BACKENDS = ("sqlite",)  # the fuzz checks the HTTP layer; the database paths run on both engines elsewhere
load_all_checks()


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
def fuzz_device(app, session, factory):
    """A signed-in assessor's device with a caseload, so authenticated operations reach real data."""
    assessor = factory.assessor()
    candidate = factory.candidate(assessors=(assessor,))
    factory.capture(assessor, candidate, "observation")
    session.commit()
    answer = app.test_client().post("/api/v1/devices", json={
        "email": assessor.email, "password": "correct horse battery", "device_id": str(uuid.uuid4()),
        "name": "Fuzzing tablet"}, headers={"X-Tracker-Protocol": "1", "X-Tracker-Schema": SCHEMA_VERSION})
    assert answer.status_code == 201
    return answer.json["token"]


# Every check with its default expectations, but two the document cannot express: a request naming a protocol or
# schema this centre does not speak is refused 426 ("upgrade required"), and a part of a file, valid as the document
# describes it, may be refused for what the whole file turns out to be (413 too large for its type, 415 a type the
# centre does not take, 422 not the bytes its hash names).
CONFIG = SchemathesisConfig.from_str("""
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "426", "428", "429"]

[[operations]]
include-path = "/api/v1/uploads/{sha256}"
include-method = "PUT"
checks.positive_data_acceptance.expected-statuses = ["200", "201", "401", "403", "404", "409", "413", "415", "422"]
""")
EXAMPLES = 25  # per operation and generation mode
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=list(HealthCheck))
MODES = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]


def test_every_check_passes_on_every_operation(app, fuzz_device):
    """Schemathesis with every check on (conformance of status, content type, headers and body; negative data
    rejected and positive data accepted; missing headers, unsupported methods, ignored auth), in process against
    the app: 0 failures on every documented operation, in both generation modes."""
    app.config["RATELIMIT_ENABLED"] = False  # the fuzz signs in far more often than a person would
    schema = schemathesis.openapi.from_wsgi("/api/openapi.json", app, config=CONFIG)
    checks = CHECKS.get_all()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {o.label for o in operations} == {f"{m.upper()} {p}" for p, item in openapi.document()["paths"].items()
                                             for m in item} - {"GET /api/openapi.json"}  # the document itself
    headers = {"Authorization": f"Bearer {fuzz_device}"}
    ran, failures = [], []
    for operation in operations:
        for mode in MODES:
            @SETTINGS
            @given(case=operation.as_strategy(generation_mode=mode))
            def run(case) -> None:  # noqa: ANN001
                ran.append(operation.label)
                case.call_and_validate(headers=headers, checks=checks)

            try:
                run()
            except (Exception, BaseExceptionGroup) as exc:  # noqa: BLE001 - every operation fuzzed, all reported
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert not failures, "\n\n".join(failures)
    assert len(ran) >= len(operations) * len(MODES) * 10
