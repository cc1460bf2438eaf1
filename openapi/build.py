#!/usr/bin/env python3
"""Builds src/api/openapi.json: the Chainloop intake contract (unchanged) plus the operations
polling API and the health endpoints this service also serves. Run after changing either."""
import json, pathlib, yaml

here = pathlib.Path(__file__).parent
doc = yaml.safe_load((here / "chainloop-auto-remediation.openapi.yaml").read_text())
doc["info"]["description"] = "Remediator: the Chainloop auto-remediation contract and its operation polling API."
doc["servers"] = [{"url": "/"}]
s = doc["components"]["schemas"]
# The error body this server sends for every error. It has the shape of the contract's per-code
# BadRequestResponse & co. (`details` are strings), with any gRPC code; rpcStatus, whose
# `details` are protobufAny objects, does not describe it (schemathesis found this: a 400 with
# string details failed rpcStatus).
s["v1ErrorResponse"] = {"type": "object", "title": "ErrorResponse", "required": ["code", "message"],
    "description": "Error with a gRPC status code: 3 INVALID_ARGUMENT and 9 FAILED_PRECONDITION (400), 16 UNAUTHENTICATED (401), "
                   "7 PERMISSION_DENIED (403), 5 NOT_FOUND (404), 8 RESOURCE_EXHAUSTED (429), 13 INTERNAL (500), 14 UNAVAILABLE (503). "
                   "Refusals of the HTTP layer keep their HTTP status: 12 UNIMPLEMENTED (405, method not allowed), 4 DEADLINE_EXCEEDED "
                   "(408, body too slow), 8 RESOURCE_EXHAUSTED (413 body too large, 431 headers too large), 14 UNAVAILABLE (503, "
                   "connection limit)",
    "properties": {"code": {"type": "integer", "format": "int32", "description": "gRPC status code"},
                   "message": {"type": "string", "description": "A human-readable message"},
                   "details": {"type": "array", "items": {"type": "string"}, "description": "Additional details"}}}
err = lambda desc: {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/v1ErrorResponse"}}}}
retry_after = {"Retry-After": {"description": "Seconds to wait before retrying", "schema": {"type": "integer", "minimum": 0}}}
common = {"400": err("Invalid argument (code 3) or failed precondition (code 9)"),
          "401": err("Unauthenticated (code 16): missing, malformed, expired or wrongly signed bearer token"),
          "403": err("Permission denied (code 7): the token lacks the required scope"),
          "404": err("Not found (code 5), also for another organisation's resources"),
          "429": {**err("Resource exhausted (code 8): rate limited"), "headers": retry_after},
          "500": err("Internal (code 13); details are only in the server's logs"),
          "503": err("Unavailable (code 14): the database (or, before its first fetch, the JWKS) is unreachable")}
# Limits of the HTTP layer (intake.max_body_bytes, max_header_bytes, body_read_timeout_secs), in the same body.
too_large = err("Resource exhausted (code 8): the request body is over intake.max_body_bytes (refused on its Content-Length before it is read)")
too_slow = err("Deadline exceeded (code 4): the request body did not arrive within intake.body_read_timeout_secs")
headers_too_large = err("Resource exhausted (code 8): more than 100 headers, or over intake.max_header_bytes of them")
# The contract's own endpoint keeps its documented responses; this server can also answer these.
# The request is documented as this server enforces it: a UUID, required.
trigger = doc["paths"]["/v1/findings/auto-remediation"]["post"]
for code in ["404", "429", "503"]:
    trigger["responses"].setdefault(code, common[code])
trigger["responses"].update({"408": too_slow, "413": too_large, "431": headers_too_large})
trigger["responses"]["400"]["description"] = ("Invalid argument (code 3), or failed precondition (code 9): the assessment is "
    "not AFFECTED, or its project's repository URL or default branch is one the worker must refuse (the message says why)")
trigger_request = s["v1FindingServiceTriggerAutoRemediationRequest"]
trigger_request["required"] = ["assessment_id"]
trigger_request["properties"]["assessment_id"]["format"] = "uuid"
s["v1FindingServiceTriggerAutoRemediationResponse"]["required"] = ["operation_id"]
s["v1FindingServiceTriggerAutoRemediationResponse"]["properties"]["operation_id"]["format"] = "uuid"
s["v1AsyncOperationStatus"] = {"type": "string", "enum": [
    "ASYNC_OPERATION_STATUS_UNSPECIFIED", "ASYNC_OPERATION_STATUS_PENDING", "ASYNC_OPERATION_STATUS_RUNNING",
    "ASYNC_OPERATION_STATUS_SUCCEEDED", "ASYNC_OPERATION_STATUS_FAILED", "ASYNC_OPERATION_STATUS_CANCELLED"]}
s["v1AsyncOperationResult"] = {"type": "object", "required": ["id", "kind", "status", "resource_type", "resource_id", "project_id", "created_at", "attempts"], "properties": {
    "id": {"type": "string", "format": "uuid"}, "kind": {"type": "string"},
    "status": {"$ref": "#/components/schemas/v1AsyncOperationStatus"},
    "resource_type": {"type": "string"}, "resource_id": {"type": "string", "format": "uuid"},
    "project_id": {"type": "string", "format": "uuid"}, "project_version_id": {"type": "string", "format": "uuid"},
    "output": {"type": "object", "additionalProperties": True, "description": "PR url and number, branch, commit, forge, patcher, LLM usage"},
    "error_message": {"type": "string"}, "created_at": {"type": "string", "format": "date-time"},
    "started_at": {"type": "string", "format": "date-time"}, "finished_at": {"type": "string", "format": "date-time"},
    "step": {"type": "string", "description": "current or last worker step"}, "attempts": {"type": "integer", "format": "int32"}}}
s["v1GetOperationResponse"] = {"type": "object", "properties": {"operation": {"$ref": "#/components/schemas/v1AsyncOperationResult"}}}
s["v1OffsetPaginationResponse"] = {"type": "object", "properties": {k: {"type": "integer", "format": "int64"} for k in ["total_count", "page", "total_pages", "page_size"]}}
s["v1ListOperationsResponse"] = {"type": "object", "properties": {
    "operations": {"type": "array", "items": {"$ref": "#/components/schemas/v1AsyncOperationResult"}},
    "pagination": {"$ref": "#/components/schemas/v1OffsetPaginationResponse"}}}
# Remediation writes (trigger and cancel) share a per-organisation rate limit.
limited = {**err("Resource exhausted (code 8): the organisation is over intake.rate_limit_per_minute"),
           "headers": {"Retry-After": {"description": "seconds until a request is allowed again",
                                       "schema": {"type": "integer", "minimum": 1}}}}
doc["paths"]["/v1/findings/auto-remediation"]["post"]["responses"]["429"] = limited
ok = lambda ref: {"description": "A successful response.", "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}
doc["paths"]["/v1/operations/{operation_id}"] = {"get": {
    "tags": ["AsyncOperationsService"], "operationId": "AsyncOperationsService_GetOperation", "summary": "Get an operation",
    "parameters": [{"name": "operation_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}],
    "responses": {"200": ok("v1GetOperationResponse"), **common, "431": headers_too_large}}}
doc["paths"]["/v1/operations/{operation_id}/cancel"] = {"post": {
    "tags": ["AsyncOperationsService"], "operationId": "AsyncOperationsService_CancelOperation",
    "summary": "Cancel an operation: PENDING ends CANCELLED at once; RUNNING stops at its next step boundary (refused once it is pushing)",
    "parameters": [{"name": "operation_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}],
    "responses": {"200": ok("v1GetOperationResponse"), **common, "429": limited, "413": too_large, "431": headers_too_large}}}
s["v1AsyncOperationResult"]["properties"]["cancel_requested"] = {"type": "boolean", "description": "a cancel was accepted; the worker stops at its next step boundary"}
# Text parameters are refused with a control character in them (400 code 3 naming the parameter).
no_control = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
q = lambda name, schema, desc: {"name": name, "in": "query", "required": False, "schema": schema, "description": desc}
doc["paths"]["/v1/operations"] = {"get": {
    "tags": ["AsyncOperationsService"], "operationId": "AsyncOperationsService_ListOperations", "summary": "List operations, newest first",
    "parameters": [q("pagination.page", {"type": "integer", "format": "int32", "minimum": 0}, "zero-based page"),
                   q("pagination.page_size", {"type": "integer", "format": "int32", "minimum": 0}, "default 50, clamped to 100"),
                   # resource_type and resource_id go together: one exploded object parameter says so in
                   # the schema (the query is still `resource_type=..&resource_id=..`), so a generated
                   # request never has one without the other (schemathesis ST202 found the lone ones).
                   {**q("resource", {"type": "object", "required": ["resource_type", "resource_id"], "additionalProperties": False,
                                     "properties": {"resource_type": {"type": "string", "minLength": 1, "pattern": no_control,
                                                                      "description": "e.g. assessment"},
                                                    "resource_id": {"type": "string", "format": "uuid"}}},
                        "the resource the operations act on: resource_type and resource_id, both or neither"),
                    "style": "form", "explode": True},
                   q("status", {"$ref": "#/components/schemas/v1AsyncOperationStatus"}, "")],
    "responses": {"200": ok("v1ListOperationsResponse"), **common, "431": headers_too_large}}}
health = lambda desc, schema: {"description": desc, "content": {"application/json": {"schema": schema}}}
probe = {"type": "string", "description": "\"ok\" or why the dependency is unreachable"}
readiness = {"type": "object", "required": ["status", "database", "broker"], "properties": {
    "status": {"type": "string", "enum": ["ready", "not ready"]}, "database": probe, "broker": probe}}
doc["paths"]["/healthz"] = {"get": {"summary": "Liveness: the process answers", "security": [], "operationId": "healthz",
    "responses": {"200": health("Alive", {"type": "object", "required": ["status"], "properties": {"status": {"type": "string", "enum": ["ok"]}}})}}}
doc["paths"]["/readyz"] = {"get": {"summary": "Readiness: database and broker reachable", "security": [], "operationId": "readyz",
    "responses": {"200": health("Ready", readiness), "503": health("Not ready", readiness)}}}
doc["paths"]["/metrics"] = {"get": {"summary": "Prometheus metrics", "security": [], "operationId": "metrics",
    "responses": {"200": {"description": "Prometheus text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}}}}
doc["paths"]["/openapi.json"] = {"get": {"summary": "This document", "security": [], "operationId": "openapi",
    "responses": {"200": health("The OpenAPI document", {"type": "object"})}}}
out = here.parent / "src" / "api" / "openapi.json"
out.write_text(json.dumps(doc, indent=2) + "\n")
print(f"wrote {out}")
