"""The browser authenticator (/authenticator) in Debian's Chromium against a real `tokenward serve`.

The page makes a non-extractable X25519 key, enrols it (aead ``aes256gcm``), and opens the captcha
that the sign-in page shows in another tab with its own WebCrypto HPKE; the code it shows signs the
user in. The page's decrypt is also run on payloads sealed by Python (a fresh one and the vector).
"""

from __future__ import annotations

import json
from pathlib import Path

from playwright.sync_api import Page

from tests.e2e.processes import tokenward
from tests.helpers import enrollment_code_in
from tests.ui import test_browser as tb
from tests.ui.test_browser import Server, Shots
from tokenward.identity.captcha import CaptchaPlaintext, seal_captcha
from tokenward.identity.encoding import b64u_decode

# The module-scoped server, browser and tab fixtures of test_browser.py (and its CI=true rule for Chromium).
server = tb.server
chromium = tb.chromium
page = tb.page

VECTOR = Path(__file__).parents[1] / "identity" / "vectors" / "captcha_aes256gcm.json"


def _new_key(tab: Page, server: Server) -> str:
    tab.goto(server.url + "/authenticator")
    tab.get_by_text("This browser has no key yet.").wait_for()
    tab.get_by_role("button", name="Create a key in this browser").click()
    tab.get_by_text("This browser holds a key").wait_for()
    public_key = tab.get_by_label("Public key").input_value()
    assert len(b64u_decode(public_key, field="public_key")) == 32
    return public_key


def _read(tab: Page, payload: str) -> str:
    tab.get_by_label("Captcha text").fill(payload)
    tab.get_by_role("button", name="Show the code").click()
    tab.locator("#result").wait_for()
    return tab.locator("#captcha-code").inner_text()


def test_browser_authenticator_enrols_and_signs_in(server: Server, page: tuple[Page, list[str]]) -> None:
    tab, problems = page
    shots = Shots()
    email = "bea@example.com"
    public_key = _new_key(tab, server)
    tab.reload()
    tab.get_by_text("This browser holds a key").wait_for()
    assert tab.get_by_label("Public key").input_value() == public_key  # kept in IndexedDB

    result = tokenward("user", "enroll", email, env=server.env)
    assert result.returncode == 0, result.stderr
    tab.get_by_label("E-mail address").fill(email)
    tab.get_by_label("Enrolment code").fill(enrollment_code_in(result.stdout))
    tab.get_by_role("button", name="Enrol this browser").click()
    tab.get_by_text(f"This browser is now the authenticator of {email}").wait_for()

    login = tab.context.new_page()
    login.goto(server.url + "/login")
    login.get_by_label("E-mail address").fill(email)
    login.get_by_role("button", name="Send me a captcha").click()
    payload = login.locator("#payload").input_value()
    assert payload.startswith("TWC2.aes256gcm.")

    code = _read(tab, payload)
    assert len(code) == 5
    assert tab.locator("#captcha-account").inner_text() == email
    assert tab.locator("#captcha-origin").inner_text() == "https://auth.example.com"  # the portal's origin
    shots(tab, "authenticator")

    login.get_by_label("Code from your authenticator").fill(code)
    login.get_by_role("button", name="Sign in").click()
    login.wait_for_url("**/account/tokens")
    assert problems == []


def test_page_decrypt_matches_python(server: Server, page: tuple[Page, list[str]]) -> None:
    tab, problems = page
    public_key = _new_key(tab, server)
    plain = CaptchaPlaintext(
        "AAAAAAAAAAAAAAAAAAAAAA", "K7MXA", "auth.example.com", "dan@example.com", "App", "https://app.example.com", 1
    )
    sealed = seal_captcha(plain, b64u_decode(public_key, field="k"), aead="aes256gcm")
    assert _read(tab, sealed) == "K7MXA"
    assert tab.locator("#captcha-origin").inner_text() == "https://app.example.com"
    assert "(expired)" in tab.locator("#captcha-expires").inner_text()

    # A ChaCha20-Poly1305 captcha, a tampered one and one for another key are refused with a sentence.
    for payload, words in [
        (seal_captcha(plain, b64u_decode(public_key, field="k")), "ChaCha20-Poly1305"),
        (sealed[:-4] + ("AAAA" if not sealed.endswith("AAAA") else "BBBB"), "not encrypted to this browser"),
        ("hello", "not a tokenward captcha"),
    ]:
        tab.get_by_label("Captcha text").fill(payload)
        tab.get_by_role("button", name="Show the code").click()
        assert words in tab.get_by_role("alert").inner_text()
        assert tab.locator("#result").is_hidden()

    # The vector, with its private key imported into WebCrypto, through the module's own openCaptcha.
    vector = json.loads(VECTOR.read_text(encoding="utf-8"))
    opened = tab.evaluate(
        """async (v) => {
            const m = await import("/static/authenticator.js");
            const jwk = {kty: "OKP", crv: "X25519", d: v.recipient_private_key, x: v.recipient_public_key};
            const key = await crypto.subtle.importKey("jwk", jwk, {name: "X25519"}, false, ["deriveBits"]);
            return await m.openCaptcha(v.payload, key, m.b64uDecode(v.recipient_public_key));
        }""",
        vector,
    )
    assert opened == vector["plaintext"]
    assert problems == []
