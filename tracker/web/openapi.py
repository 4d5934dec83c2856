"""The OpenAPI 3.1 document of the field sync API, as data (served at /api/openapi.json and fuzzed in the tests)."""
from functools import cache
from typing import Any

from sync import MAX_SEQ, PROTOCOL_VERSION, SCHEMA_VERSION
from tracker.media import LIMITS

BATCH_ITEMS = 500  # the most items one push may carry

SHA256 = {"type": "string", "pattern": "^[0-9a-f]{64}$"}
UUID = {"type": "string", "format": "uuid"}
NEW_ID = {"type": "string", "format": "uuid",  # made on the device: never the all-zero or all-one id
          "not": {"enum": ["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"]}}
# Text that holds something besides spaces, and (on one line) no control character or line break.
GIVEN = {"type": "string", "minLength": 1, "pattern": "\\S"}
LINE = "^[^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]*[^\\s\\x00-\\x1f\\x7f-\\x9f][^\\x00-\\x1f\\x7f-\\x9f\\u2028\\u2029]*$"
LARGEST = max(LIMITS.values())  # the largest file the centre takes, of any type
ERROR = {"$ref": "#/components/schemas/Error"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*statuses: int) -> dict[str, Any]:
    words = {400: "Malformed input", 401: "Token missing, unknown, withdrawn or out of date", 403: "Not permitted",
             404: "Not found", 409: "Cannot continue from here", 413: "Too large", 415: "Unsupported media type",
             422: "The file was refused", 426: "Upgrade required", 429: "Too many attempts",
             503: "The centre is busy; try again"}
    answers = {str(s): _json(ERROR, words[s]) for s in statuses}
    if 426 in statuses:
        answers["426"] = _json({"$ref": "#/components/schemas/UpgradeRequired"}, words[426])
    return answers


VERSION_HEADERS = [
    {"name": "X-Tracker-Protocol", "in": "header", "required": True,
     "schema": {"type": "string", "enum": [str(PROTOCOL_VERSION)]},
     "description": "The sync protocol the device speaks. Missing: 400; another protocol: 426."},
    {"name": "X-Tracker-Schema", "in": "header", "required": True,
     "schema": {"type": "string", "enum": [f"{n:04d}" for n in range(1, int(SCHEMA_VERSION) + 1)]},
     "description": "The newest database migration the device has (e.g. 0004). Missing: 400; newer than the "
                    "centre's, or not a migration's number: 426."},
]
BEARER = [{"device": []}]
HASH_PARAM = {"name": "sha256", "in": "path", "required": True, "schema": SHA256}


def _operation(summary: str, responses: dict[str, Any], *, secured: bool = True, **extra: Any) -> dict[str, Any]:
    operation = {"summary": summary, "parameters": list(VERSION_HEADERS) + extra.pop("parameters", []),
                 "responses": responses, **extra}
    if secured:
        operation["security"] = BEARER
    return operation


SCHEMAS: dict[str, Any] = {
    "Error": {"type": "object", "required": ["error", "message"],
              "properties": {"error": {"type": "string"}, "message": {"type": "string"}}},
    "UpgradeRequired": {"type": "object", "required": ["error", "message", "protocols", "schema"],
                        "properties": {"error": {"const": "upgrade_required"}, "message": {"type": "string"},
                                       "protocols": {"type": "array", "items": {"type": "integer"}},
                                       "schema": {"type": "string"}}},
    "Hello": {"type": "object", "required": ["protocols", "schema", "limits"], "properties": {
        "protocols": {"type": "array", "items": {"type": "integer"}}, "schema": {"type": "string"},
        "limits": {"type": "object", "required": ["image", "document", "audio", "video", "part", "batch_items"],
                   "additionalProperties": {"type": "integer"}}}},
    "Enrolment": {"type": "object", "required": ["email", "password", "device_id", "name"], "properties": {
        "email": GIVEN, "password": GIVEN | {"maxLength": 1024}, "device_id": NEW_ID,
        "name": {"type": "string", "maxLength": 200, "pattern": LINE}}},
    "Enrolled": {"type": "object", "required": ["token", "device_id", "user", "expires_at"], "properties": {
        "token": {"type": "string"}, "device_id": UUID, "expires_at": {"type": "string", "format": "date-time"},
        "user": {"type": "object", "required": ["id", "name", "email"],
                 "properties": {"id": UUID, "name": {"type": "string"}, "email": {"type": "string"}}}}},
    "Item": {"type": "object", "required": ["item_id", "seq", "kind", "payload"], "properties": {
        "item_id": UUID, "seq": {"type": "integer", "minimum": 1, "maximum": MAX_SEQ},
        "kind": {"type": "string", "enum": ["evidence.capture", "evidence.revise", "evidence.sign",
                                            "evidence.submit", "conflict.resolve"]},
        "payload": {"type": "object"}}},
    "Push": {"type": "object", "required": ["items"],
             "properties": {"items": {"type": "array", "maxItems": BATCH_ITEMS, "items": {
                 # Any value is taken: an item that is not an Item is refused on its own, in its verdict, so one
                 # broken item never holds up the rest of a device's queue.
                 "description": "An Item (#/components/schemas/Item). Anything else is answered refused, "
                                "invalid_input, in its own verdict; the other items are applied."}}}},
    "Verdict": {"type": "object", "required": ["item_id", "seq", "verdict", "code", "message", "result"],
                "properties": {
                    "item_id": {"type": ["string", "null"]}, "seq": {"type": ["integer", "null"]},
                    "verdict": {"enum": ["applied", "duplicate", "conflict", "refused", "held"]},
                    "code": {"type": ["string", "null"]}, "message": {"type": ["string", "null"]},
                    "result": {"type": "object"}}},
    "Verdicts": {"type": "object", "required": ["verdicts"],
                 "properties": {"verdicts": {"type": "array", "items": {"$ref": "#/components/schemas/Verdict"}}}},
    "Acknowledged": {"type": "object", "required": ["count", "digest"], "properties": {
        "count": {"type": "integer", "minimum": 0},
        "digest": {**SHA256, "description": "sha256 of the sorted item ids, one per line"}}},
    "Page": {"type": "object", "required": ["cursor", "more", "reset", "tables", "removed", "now", "acknowledged"],
             "properties": {
        "cursor": {"type": "string"}, "more": {"type": "boolean"}, "reset": {"type": "boolean"},
        "now": {"type": "string", "format": "date-time", "description": "The centre's clock (UTC)."},
        "acknowledged": {"$ref": "#/components/schemas/Acknowledged"},
        "tables": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "object"}},
                   "description": "Whole rows by SQL table name; user_account rows never carry password_hash."},
        "removed": {"type": "object", "required": ["candidate"], "properties": {
            "candidate": {"type": "array", "items": UUID},
            "evidence": {"type": "array", "items": UUID,
                         "description": "Evidence deleted at the centre (present only when there is some)."}}}}},
    "ReceiptCheck": {"type": "object", "required": ["item_ids"],
                     "properties": {"item_ids": {"type": "array", "items": UUID, "maxItems": 100000}}},
    "Missing": {"type": "object", "required": ["missing"],
                "properties": {"missing": {"type": "array", "items": UUID}}},
    "UploadState": {"type": "object", "required": ["sha256", "size", "received", "complete"], "properties": {
        "sha256": SHA256, "size": {"type": ["integer", "null"]}, "received": {"type": "integer", "minimum": 0},
        "complete": {"type": "boolean"}}},
}


@cache
def document() -> dict[str, Any]:
    """Return the whole OpenAPI document."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "Portfolio tracker field sync API", "version": str(PROTOCOL_VERSION),
                 "description": f"Protocol {PROTOCOL_VERSION}, database schema {SCHEMA_VERSION}. Every /api/v1 "
                                "request names both in headers; error bodies are always JSON."},
        "components": {"schemas": SCHEMAS,
                       "securitySchemes": {"device": {"type": "http", "scheme": "bearer",
                                                      "description": "The token issued by POST /api/v1/devices."}}},
        "paths": {
            "/api/openapi.json": {"get": {"summary": "This document", "responses": {
                "200": _json({"type": "object"}, "The OpenAPI document")}}},
            "/api/v1/hello": {"get": _operation("Protocols, schema and limits", {
                "200": _json({"$ref": "#/components/schemas/Hello"}, "What this centre speaks"),
                **_errors(400, 426)}, secured=False)},
            "/api/v1/devices": {"post": _operation("Sign in on a device and get its token", {
                "201": _json({"$ref": "#/components/schemas/Enrolled"}, "The device's token, shown once"),
                **_errors(400, 401, 403, 426, 429)}, secured=False, requestBody={
                "required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Enrolment"}}}})},
            "/api/v1/push": {"post": _operation("Send queued items; each gets a verdict", {
                "200": _json({"$ref": "#/components/schemas/Verdicts"}, "One verdict per item, in order"),
                **_errors(400, 401, 403, 413, 426, 503)}, requestBody={
                "required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/Push"}}}})},
            "/api/v1/pull": {"get": _operation("The next page of the device's scoped snapshot", {
                "200": _json({"$ref": "#/components/schemas/Page"}, "A page"),
                **_errors(400, 401, 409, 426)}, parameters=[
                {"name": "after", "in": "query", "required": False, "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "required": False,
                 "schema": {"type": "integer", "minimum": 1, "maximum": 200}}])},
            "/api/v1/receipts": {"post": _operation("Name the acknowledged items the centre no longer keeps", {
                "200": _json({"$ref": "#/components/schemas/Missing"}, "The ids with no receipt at the centre"),
                **_errors(400, 401, 426)}, requestBody={
                "required": True, "content": {"application/json": {
                    "schema": {"$ref": "#/components/schemas/ReceiptCheck"}}}})},
            "/api/v1/uploads/{sha256}": {
                "get": _operation("How much of a file the centre has", {
                    "200": _json({"$ref": "#/components/schemas/UploadState"}, "The upload's state"),
                    **_errors(400, 401, 426)}, parameters=[HASH_PARAM]),
                "put": _operation("Send one part of a file", {
                    "200": _json({"$ref": "#/components/schemas/UploadState"}, "The part was taken (or was "
                                 "already there)"),
                    "201": _json({"$ref": "#/components/schemas/UploadState"}, "The file is complete and stored"),
                    **_errors(400, 401, 409, 413, 415, 422, 426)}, parameters=[
                    HASH_PARAM,
                    {"name": "size", "in": "query", "required": True,
                     "schema": {"type": "integer", "minimum": 1, "maximum": LARGEST}},
                    {"name": "offset", "in": "query", "required": True,
                     "schema": {"type": "integer", "minimum": 0, "maximum": LARGEST}}],
                    requestBody={"required": True, "content": {"application/octet-stream": {
                        "schema": {"type": "string", "format": "binary"}}}})},
            "/api/v1/media/{sha256}": {"get": _operation("A stored file of evidence in the device's scope", {
                "200": {"description": "The file's bytes", "content": {"*/*": {"schema": {}}}},
                **_errors(400, 401, 404, 426)}, parameters=[HASH_PARAM])},
        },
    }
