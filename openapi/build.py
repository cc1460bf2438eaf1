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
    "not AFFECTED, or its project's repository URL or default branch is one the worker must refuse, or the pull request of "
    "its package fix (same or higher version) was closed without merging: it is not opened again (the message says when; "
    "reopen it on the forge, or trigger a fix to a different version)")
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
    "output": {"type": "object", "additionalProperties": True, "description": "pr_url, pr_number, pr_reused (the package's open "
        "pull request was reused), pr_updated (its title and body were rewritten: a higher version or more advisories), branch "
        "(one per package: remediator/<ecosystem>-<package>), commit, push, forge, target_version, advisories (every advisory the "
        "pull request fixes), covered_assessments (each written back), remaining (the package's advisories no version fixes, "
        "with why), patcher, LLM usage, verification, timings_ms"},
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
# Where an assessment's fix stands (assessments.remediation_status, written back by the worker and
# moved by webhooks and the reconciler).
s["v1RemediationStatus"] = {"type": "string", "enum": ["BRANCH_PUSHED", "PR_OPEN", "PR_MERGED", "PR_CLOSED", "FAILED"],
    "description": "An assessment's remediation_status. BRANCH_PUSHED: the fix is pushed to a forge without pull requests (plain "
                   "git). PR_OPEN: the package's pull request is open (it may list several advisories). PR_MERGED: it was merged "
                   "(the assessment also becomes ASSESSMENT_STATUS_FIXED with worker.mark_fixed_on_merge). PR_CLOSED: it was "
                   "closed without merging; a later trigger for the same fix answers 400 code 9 instead of opening it again. "
                   "FAILED: the last remediation failed (the operation's error_message says why)."}
# Forge webhooks: verified by the forge's own signature, not by a bearer token.
s["v1WebhookDeliveryResponse"] = {"type": "object", "required": ["delivery_id", "outcome"], "properties": {
    "delivery_id": {"type": "string"},
    "outcome": {"type": "string", "enum": ["applied", "unchanged", "unknown_pull_request", "ignored", "duplicate"],
                "description": "applied: the pull request's state (and its assessments' remediation_status) changed; unchanged: "
                               "it was known; unknown_pull_request: not a remediation pull request; ignored: an event or "
                               "action not followed; duplicate: this delivery id was applied before, nothing changed"}}}
hook_header = lambda name, desc: {"name": name, "in": "header", "required": False, "schema": {"type": "string"}, "description": desc}
doc["paths"]["/v1/webhooks/{forge}"] = {"post": {
    "tags": ["Webhooks"], "operationId": "Webhooks_Receive", "security": [],
    "summary": "A forge reports that a remediation pull request was merged, closed or reopened",
    "description": "GitHub: pull_request events, signed with X-Hub-Signature-256 (sha256= HMAC-SHA256 of the raw body), id in "
                   "X-GitHub-Delivery. GitLab: Merge Request Hook events, X-Gitlab-Token holding the secret, id in "
                   "X-Gitlab-Event-UUID. Gitea/Forgejo: pull_request events, X-Gitea-Signature (hex HMAC-SHA256 of the raw "
                   "body), id in X-Gitea-Delivery. Unsigned or mis-signed deliveries are refused (401) and change nothing; a "
                   "delivery id seen before changes nothing (outcome duplicate). Secrets: [webhooks] in the server's config.",
    "parameters": [{"name": "forge", "in": "path", "required": True, "schema": {"type": "string", "enum": ["github", "gitlab", "gitea"]}},
                   hook_header("X-Hub-Signature-256", "GitHub signature"), hook_header("X-GitHub-Delivery", "GitHub delivery id"),
                   hook_header("X-GitHub-Event", "GitHub event"), hook_header("X-Gitlab-Token", "GitLab secret token"),
                   hook_header("X-Gitlab-Event-UUID", "GitLab delivery id"), hook_header("X-Gitlab-Event", "GitLab event"),
                   hook_header("X-Gitea-Signature", "Gitea signature"), hook_header("X-Gitea-Delivery", "Gitea delivery id"),
                   hook_header("X-Gitea-Event", "Gitea event")],
    "requestBody": {"required": True, "content": {"application/json": {"schema": {"type": "object"}}}},
    "responses": {"200": ok("v1WebhookDeliveryResponse"),
                  "400": err("Invalid argument (code 3): no delivery id or event header, or a signed body that is not the event it says"),
                  "401": err("Unauthenticated (code 16): unsigned, mis-signed, or no secret configured for the forge"),
                  "404": err("Not found (code 5): no such forge"),
                  "413": err("Resource exhausted (code 8): the delivery is over webhooks.max_body_bytes"),
                  "408": too_slow, "431": headers_too_large,
                  "503": err("Unavailable (code 14): the database is unreachable (the forge retries)")}}}
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
