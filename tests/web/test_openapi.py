"""/openapi.json describes the answers as they are sent: the error body, every status, 405's Allow (issue 15, 11)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tokenward.web.openapi import operation_errors

METHODS = ("get", "put", "post", "delete", "patch")


async def _document(client: httpx.AsyncClient) -> dict[str, Any]:
    r = await client.get("/openapi.json")
    assert r.status_code == 200
    doc: dict[str, Any] = r.json()
    return doc


def _operations(doc: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [(m, p, op) for p, item in doc["paths"].items() for m, op in item.items() if m in METHODS]


async def test_422_is_described_as_the_body_we_send(client: httpx.AsyncClient) -> None:
    doc = await _document(client)
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas and "ValidationError" not in schemas
    error = schemas["Error"]
    op = doc["paths"]["/api/captcha"]["post"]
    assert op["responses"]["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}

    r = await client.post("/api/captcha", json={"email": 5})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid_request"
    assert set(error["required"]) <= set(body)
    assert set(body) <= set(error["properties"])
    assert all(set(item) == {"field", "message"} for item in body["fields"])


async def test_every_operation_declares_its_error_statuses(client: httpx.AsyncClient) -> None:
    doc = await _document(client)
    operations = _operations(doc)
    assert len(operations) >= 20
    for method, path, op in operations:
        # A new route must say what it answers (tokenward/web/openapi.py), or schemathesis finds out.
        declared = operation_errors(method, path)
        assert declared is not None, f"{method.upper()} {path}: add it to OPERATION_ERRORS or AREA_ERRORS"
        statuses = set(op["responses"])
        assert "503" in statuses
        assert {str(s) for s in declared} <= statuses
        if "requestBody" in op:
            assert {"413", "422"} <= statuses, (method, path)
        for status, response in op["responses"].items():
            if int(status) >= 400:
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}


async def test_statuses_seen_are_declared(client: httpx.AsyncClient) -> None:
    """Spot checks of answers the audit found undeclared (schemathesis covers the rest)."""
    doc = await _document(client)
    cases: list[tuple[str, str, dict[str, Any], int]] = [
        ("get", "/api/app-tokens", {}, 401),
        ("get", "/api/app-tokens?bogus=1", {}, 400),
        (
            "post",
            "/api/captcha",
            {"json": {"email": "not an address", "client_id": "A" * 40, "code_challenge": "x" * 43}},
            400,
        ),
        ("post", "/api/captcha/verify", {"json": {"captcha_id": "x" * 22, "code": "ABCDE"}}, 422),
        ("get", "/api/poke?subject=a", {}, 401),
        ("post", "/api/enroll/email", {"json": {"email": "a@example.com"}}, 503),
        ("post", "/api/app-tokens", {"content": b"x" * 4096, "headers": {"content-type": "application/json"}}, 413),
    ]
    for method, url, kwargs, expected in cases:
        r = await client.request(method.upper(), url, **kwargs)
        assert r.status_code == expected, (method, url, r.status_code, r.text)
        assert set(r.json()) >= {"error", "detail"}
        path = url.partition("?")[0]
        assert str(expected) in doc["paths"][path][method]["responses"], (method, path, expected)


@pytest.mark.parametrize(
    ("method", "path", "allowed"),
    [
        ("PUT", "/api/captcha", {"POST"}),
        ("PATCH", "/api/app-tokens/abc", {"GET", "DELETE"}),
        ("POST", "/api/policy", {"GET"}),
        ("DELETE", "/healthz", {"GET", "HEAD"}),
    ],
)
async def test_405_carries_allow(client: httpx.AsyncClient, method: str, path: str, allowed: set[str]) -> None:
    r = await client.request(method, path)
    assert r.status_code == 405
    assert r.json()["error"] == "method_not_allowed"
    assert {m.strip() for m in r.headers["allow"].split(",")} == allowed
