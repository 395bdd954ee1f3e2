"""Ready-made captcha authenticators for :meth:`Tokenward.login_captcha` (docs/resource-servers.md).

* :func:`key_authenticator` — the reference authenticator's logic with a key in hand (scripts,
  tests, an agent holding its own enrolled key): open the sealed captcha, check what it says, answer.
* :func:`prompt_authenticator` — a person: show the QR code in the terminal, read the code they type.
"""

from __future__ import annotations

import io
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tokenward.client.flows import CaptchaChallenge
from tokenward.errorcodes import ErrorCode
from tokenward.errors import Unauthorized
from tokenward.identity.captcha import open_captcha

__all__ = ["key_authenticator", "prompt_authenticator"]


def key_authenticator(key: X25519PrivateKey, *, server: str | None = None) -> Callable[[CaptchaChallenge], str]:
    """Answer captchas sealed to ``key``; refuse one made for another account or (when given) server."""

    def answer(challenge: CaptchaChallenge) -> str:
        plain = open_captcha(challenge.captcha, key)
        if plain.subject != challenge.email or (server is not None and plain.server != server):
            raise Unauthorized(
                f"the captcha was made for {plain.subject} on {plain.server}, not this login: refusing to answer",
                code=ErrorCode.CAPTCHA_MISMATCH,
            )
        return plain.code

    return answer


def prompt_authenticator(
    *, read: Callable[[str], str] = input, write: Callable[[str], object] = print
) -> Callable[[CaptchaChallenge], str]:
    """Show the captcha's QR code in the terminal and return the code the person types."""
    import segno  # a core dependency; imported here so the SDK's import stays light

    def answer(challenge: CaptchaChallenge) -> str:
        qr = segno.make(challenge.captcha, error="m")
        write(f"Scan this with your tokenward authenticator ({challenge.email}):")
        picture = io.StringIO()
        qr.terminal(out=picture, compact=True)
        write(picture.getvalue())
        return read("code shown by the authenticator: ").strip()

    return answer
