"""Forward auth: config tokens, token stores, query engines, plugins and the ``/verify`` pipeline.

Importing this package reads nothing and starts nothing. See ``docs/forward-auth.md``.
"""

from tokenward.forwardauth.config_token import DecodedToken, decode_token, encode_token
from tokenward.forwardauth.schema import ConfigDocument, parse_document

__all__ = ["ConfigDocument", "DecodedToken", "decode_token", "encode_token", "parse_document"]
