"""/authenticator in-process: the page, its CSRF-protected enrolment form and the AEAD it records."""

from __future__ import annotations

from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.helpers import enrollment_code
from tests.ui.conftest import csrf_of
from tokenward.identity.client_tokens import b64u_of_public


async def test_page_loads_its_module_and_has_no_inline_script(browser: httpx.AsyncClient) -> None:
    r = await browser.get("/authenticator")
    assert r.status_code == 200
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert '<script type="module" src="/static/authenticator.js"></script>' in r.text
    assert "<script>" not in r.text
    js = await browser.get("/static/authenticator.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert 'generateKey({ name: "X25519" }, false, ["deriveBits"])' in js.text


async def test_enrolment_is_csrf_protected_and_records_aes256gcm(browser: httpx.AsyncClient, data: Path) -> None:
    email = "erin@example.com"
    code = await enrollment_code(data, email)
    key = X25519PrivateKey.generate()
    form = {"email": email, "code": code, "public_key": b64u_of_public(key)}
    page = await browser.get("/authenticator")
    forged = await browser.post("/authenticator", data={**form, "csrf": "k.forged"})
    assert forged.status_code == 403 and "csrf_invalid" in forged.text
    bad_key = await browser.post("/authenticator", data={**form, "public_key": "short", "csrf": csrf_of(page.text)})
    assert bad_key.status_code == 400 and 'role="alert"' in bad_key.text
    r = await browser.post("/authenticator", data={**form, "csrf": csrf_of(page.text)})
    assert r.status_code == 200 and f"now the authenticator of <strong>{email}</strong>" in r.text
    again = await browser.post("/authenticator", data={**form, "csrf": csrf_of(page.text)})
    assert again.status_code == 401  # the code is single use
    login = await browser.get("/login")
    captcha = await browser.post("/login", data={"csrf": csrf_of(login.text), "email": email})
    assert captcha.status_code == 200 and "TWC2.aes256gcm." in captcha.text
