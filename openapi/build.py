#!/usr/bin/env python3
"""Builds src/api/openapi.json: the Chainloop intake contract (unchanged) plus the operations
polling API and the health endpoints this service also serves. Run after changing either."""
import json, pathlib, yaml

here = pathlib.Path(__file__).parent
doc = yaml.safe_load((here / "chainloop-auto-remediation.openapi.yaml").read_text())
doc["info"]["description"] = "Remediator: the Chainloop auto-remediation contract and its operation polling API."
doc["servers"] = [{"url": "/"}]
s = doc["components"]["schemas"]
err = lambda code, desc: {"description": desc, "content": {"application/json": {"schema": {"$ref": "#/components/schemas/rpcStatus"}}}}
common = {"400": err(3, "Invalid argument"), "401": err(16, "Unauthenticated"), "403": err(7, "Permission denied"),
          "404": err(5, "Not found"), "500": err(13, "Internal"), "503": err(14, "Unavailable")}
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
limited = {**err(8, "Resource exhausted: the organisation is over intake.rate_limit_per_minute"),
           "headers": {"Retry-After": {"description": "seconds until a request is allowed again",
                                       "schema": {"type": "integer", "minimum": 1}}}}
doc["paths"]["/v1/findings/auto-remediation"]["post"]["responses"]["429"] = limited
ok = lambda ref: {"description": "A successful response.", "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{ref}"}}}}
doc["paths"]["/v1/operations/{operation_id}"] = {"get": {
    "tags": ["AsyncOperationsService"], "operationId": "AsyncOperationsService_GetOperation", "summary": "Get an operation",
    "parameters": [{"name": "operation_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}],
    "responses": {"200": ok("v1GetOperationResponse"), **common}}}
doc["paths"]["/v1/operations/{operation_id}/cancel"] = {"post": {
    "tags": ["AsyncOperationsService"], "operationId": "AsyncOperationsService_CancelOperation",
    "summary": "Cancel an operation: PENDING ends CANCELLED at once; RUNNING stops at its next step boundary (refused once it is pushing)",
    "parameters": [{"name": "operation_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}],
    "responses": {"200": ok("v1GetOperationResponse"), **common, "429": limited}}}
s["v1AsyncOperationResult"]["properties"]["cancel_requested"] = {"type": "boolean", "description": "a cancel was accepted; the worker stops at its next step boundary"}
q = lambda name, schema, desc: {"name": name, "in": "query", "required": False, "schema": schema, "description": desc}
doc["paths"]["/v1/operations"] = {"get": {
    "tags": ["AsyncOperationsService"], "operationId": "AsyncOperationsService_ListOperations", "summary": "List operations, newest first",
    "parameters": [q("pagination.page", {"type": "integer", "format": "int32", "minimum": 0}, "zero-based page"),
                   q("pagination.page_size", {"type": "integer", "format": "int32", "minimum": 0}, "default 50, clamped to 100"),
                   q("resource_type", {"type": "string"}, "given together with resource_id"),
                   q("resource_id", {"type": "string", "format": "uuid"}, "given together with resource_type"),
                   q("status", {"$ref": "#/components/schemas/v1AsyncOperationStatus"}, "")],
    "responses": {"200": ok("v1ListOperationsResponse"), **common}}}
plain = {"description": "JSON status", "content": {"application/json": {"schema": {"type": "object"}}}}
for path, desc in [("/healthz", "Liveness"), ("/readyz", "Readiness: database and broker reachable")]:
    doc["paths"][path] = {"get": {"summary": desc, "security": [], "operationId": path.strip("/"), "responses": {"200": plain, "503": plain}}}
doc["paths"]["/openapi.json"] = {"get": {"summary": "This document", "security": [], "operationId": "openapi", "responses": {"200": plain}}}
out = here.parent / "src" / "api" / "openapi.json"
out.write_text(json.dumps(doc, indent=2) + "\n")
print(f"wrote {out}")
