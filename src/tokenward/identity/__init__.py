"""Identity: client apps, captcha challenges, source identifiers, client tokens (docs/protocol.md).

The modules here are pure (``now``, keys and randomness are passed in) except
:mod:`tokenward.identity.service`, which combines them with storage and policy.
"""

__all__: list[str] = []
