"""A client app: log a user in with the captcha, then call a resource server with sealed requests.

    python examples/client_app.py https://auth.example.com CLIENT_ID https://api.example.com \
        api.example.com alice@example.com https://app.example.com [AUTHENTICATOR_KEY_FILE]

Without AUTHENTICATOR_KEY_FILE the captcha is shown as a QR code for the person's authenticator
and the code is read from the terminal; with it (a raw 32-byte X25519 key, base64url) the
captcha is answered by the key, as an agent or a test would.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tokenward.client import Tokenward, key_authenticator, prompt_authenticator
from tokenward.errors import TokenwardError
from tokenward.identity.encoding import b64u_decode


def main(tokenward_url: str, client_id: str, api_url: str, api_name: str, email: str, origin: str, *key: str) -> int:
    if key:
        raw = b64u_decode(Path(key[0]).read_text().strip(), field="authenticator key", length=32)
        authenticator = key_authenticator(X25519PrivateKey.from_private_bytes(raw))
    else:
        authenticator = prompt_authenticator()
    try:
        with Tokenward(tokenward_url, client_id=client_id) as tw:
            session = tw.login_captcha(email, authenticator=authenticator, origin=origin)
            print(f"logged in as {session.subject} with scopes {', '.join(session.scopes)}", file=sys.stderr)
            with httpx.Client(base_url=api_url, auth=tw.auth(api_name), timeout=30) as api:
                saved = api.post("/notes", json={"text": "hello from the client app"})
                admin = api.get("/admin")
            tw.logout()
    except TokenwardError as exc:
        print(f"error: {exc.detail} ({exc.error_code})", file=sys.stderr)
        return 1
    print(json.dumps({"notes": [saved.status_code, saved.json()], "admin": [admin.status_code, admin.json()]}))
    return 0 if saved.is_success else 1


if __name__ == "__main__":
    if len(sys.argv) not in (7, 8):
        sys.exit(__doc__)
    sys.exit(main(*sys.argv[1:]))
