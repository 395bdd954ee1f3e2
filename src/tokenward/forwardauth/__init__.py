"""Forward auth: config tokens, token stores, query engines, plugins and the ``/verify`` pipeline.

Importing this package reads nothing and starts nothing. See ``docs/forward-auth.md``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tokenward._facade import lazy_exports

if TYPE_CHECKING:
    from tokenward.forwardauth.config_token import DecodedToken, decode_token, encode_token
    from tokenward.forwardauth.schema import ConfigDocument, parse_document

__all__ = ["ConfigDocument", "DecodedToken", "decode_token", "encode_token", "parse_document"]

__getattr__, __dir__ = lazy_exports(
    __name__,
    {
        "tokenward.forwardauth.config_token": ("DecodedToken", "decode_token", "encode_token"),
        "tokenward.forwardauth.schema": ("ConfigDocument", "parse_document"),
    },
)
