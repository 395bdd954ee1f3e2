"""The original request, rebuilt from the headers a reverse proxy sends to ``/verify``.

Two conventions (eas, Authelia):

- ``X-Original-URL`` (absolute URL) + ``X-Original-Method`` — nginx ``auth_request``;
- ``X-Forwarded-Proto`` / ``-Host`` / ``-Uri`` / ``-Method`` (+ ``X-Forwarded-Prefix``,
  ``X-Replaced-Path``) — Caddy ``forward_auth``, Traefik ``forwardAuth``.

A missing header is an immediate 400 whose code names it (``missing_x_forwarded_host``); eas hung.
Queries see :meth:`RequestInfo.as_dict`: ``{uri, parsedUri{scheme,host,port,path,query},
parsedQuery, method, headers}``, built only when something asks for it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest

__all__ = ["MAX_QUERY_PARAMS", "MAX_URL_LENGTH", "RequestInfo", "reconstruct"]

MAX_URL_LENGTH = 8192
MAX_CACHED_HOST = 300
MAX_QUERY_PARAMS = 256
_METHODS = frozenset(
    {
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "PATCH",
        "DELETE",
        "OPTIONS",
        "TRACE",
        "CONNECT",
        "PROPFIND",
        "PROPPATCH",
        "MKCOL",
        "COPY",
        "MOVE",
        "LOCK",
        "UNLOCK",
        "REPORT",
        "SEARCH",
    }
)


_NOT_HOST = re.compile(r"[ /\\@?#]")


_MISSING = {
    "X-Forwarded-Proto": ErrorCode.MISSING_X_FORWARDED_PROTO,
    "X-Forwarded-Host": ErrorCode.MISSING_X_FORWARDED_HOST,
    "X-Forwarded-Uri": ErrorCode.MISSING_X_FORWARDED_URI,
    "X-Forwarded-Method": ErrorCode.MISSING_X_FORWARDED_METHOD,
    "X-Original-Method": ErrorCode.MISSING_X_ORIGINAL_METHOD,
}


def _missing(name: str) -> BadRequest:
    return BadRequest(f"the proxy did not send the {name} header; see docs/proxies.md", code=_MISSING[name])


def _bad(name: str, why: str) -> BadRequest:
    return BadRequest(f"the {name} header {why}", code=ErrorCode.FORWARDED_HEADER_INVALID)


class RequestInfo:
    """What the client asked the proxy for. Fields are plain strings; :meth:`as_dict` is built lazily."""

    __slots__ = ("_dict", "_query_params", "headers", "host", "method", "path", "port", "query", "scheme")

    def __init__(
        self, scheme: str, host: str, port: int, path: str, query: str, method: str, headers: Mapping[str, str]
    ) -> None:
        self.scheme = scheme
        self.host = host
        self.port = port
        self.path = path
        self.query = query
        self.method = method
        self.headers = headers
        self._dict: dict[str, Any] | None = None
        self._query_params: dict[str, list[str]] | None = None

    @property
    def uri(self) -> str:
        default = (self.scheme == "https" and self.port == 443) or (self.scheme == "http" and self.port == 80)
        netloc = self.host if default else f"{self.host}:{self.port}"
        return f"{self.scheme}://{netloc}{self.path}" + (f"?{self.query}" if self.query else "")

    @property
    def query_params(self) -> dict[str, list[str]]:
        if self._query_params is None:
            try:
                self._query_params = parse_qs(self.query, keep_blank_values=True, max_num_fields=MAX_QUERY_PARAMS)
            except ValueError:
                raise BadRequest(
                    "the original request has too many query parameters", code=ErrorCode.QUERY_TOO_LARGE
                ) from None
        return self._query_params

    def as_dict(self) -> dict[str, Any]:
        if self._dict is None:
            params = {k: v[0] if len(v) == 1 else v for k, v in self.query_params.items()}
            self._dict = {
                "uri": self.uri,
                "method": self.method,
                "parsedUri": {
                    "scheme": self.scheme,
                    "host": self.host,
                    "port": self.port,
                    "path": self.path,
                    "query": self.query,
                },
                "parsedQuery": params,
                "headers": dict(self.headers),
            }
        return self._dict


def _split_host(value: str, scheme: str, name: str) -> tuple[str, int]:
    if len(value) <= MAX_CACHED_HOST:  # proxies send a handful of distinct hosts: parse each once
        return _split_host_cached(value, scheme, name)
    return _parse_host(value, scheme, name)


def _parse_host(value: str, scheme: str, name: str) -> tuple[str, int]:
    default = 443 if scheme == "https" else 80
    host = value.strip().split(",")[0].strip()
    if not host or _NOT_HOST.search(host):
        raise _bad(name, "is not a host name")
    if host.startswith("["):  # [v6]:port
        end = host.find("]")
        if end < 0:
            raise _bad(name, "is not a host name")
        rest = host[end + 1 :]
        hostname, port_text = host[: end + 1], rest[1:] if rest.startswith(":") else ""
    else:
        hostname, _, port_text = host.partition(":")
    if port_text:
        # isascii: str.isdigit() also says yes to "²", which int() refuses
        if not (port_text.isascii() and port_text.isdigit() and len(port_text) <= 5) or not 0 < int(port_text) < 65536:
            raise _bad(name, "has a bad port")
        return hostname.lower(), int(port_text)
    return hostname.lower(), default


_split_host_cached = functools.lru_cache(maxsize=512)(_parse_host)  # errors are raised, never cached


def _method(value: str | None, name: str) -> str:
    if value is None:
        raise _missing(name)
    if value in _METHODS:  # the usual case: already canonical
        return value
    method = value.strip().upper()
    if method not in _METHODS:
        raise _bad(name, "is not an HTTP method")
    return method


def _scheme(value: str, name: str) -> str:
    if value == "https" or value == "http":
        return value
    scheme = value.split(",")[0].strip().lower()
    if scheme not in ("http", "https"):
        raise _bad(name, "must be http or https")
    return scheme


def reconstruct(headers: Mapping[str, str]) -> RequestInfo:
    """Rebuild the original request from ``headers`` (lower-case names). 400 with a ``missing_*`` code if incomplete."""
    original = headers.get("x-original-url")
    if original is not None:
        if len(original) > MAX_URL_LENGTH:
            raise BadRequest("X-Original-URL is too long", code=ErrorCode.URI_TOO_LONG)
        try:
            parts = urlsplit(original.strip())
        except ValueError:  # an unbalanced IPv6 bracket: "http://[abc/"
            raise _bad("X-Original-URL", "is not a URL") from None
        scheme = _scheme(parts.scheme, "X-Original-URL")
        host, port = _split_host(parts.netloc, scheme, "X-Original-URL")
        method = _method(headers.get("x-original-method"), "X-Original-Method")
        return RequestInfo(scheme, host, port, parts.path or "/", parts.query, method, headers)
    proto = headers.get("x-forwarded-proto")
    if proto is None:
        raise _missing("X-Forwarded-Proto")
    host_header = headers.get("x-forwarded-host")
    if host_header is None:
        raise _missing("X-Forwarded-Host")
    uri = headers.get("x-forwarded-uri")
    if uri is None:
        raise _missing("X-Forwarded-Uri")
    if len(uri) > MAX_URL_LENGTH:
        raise BadRequest("X-Forwarded-Uri is too long", code=ErrorCode.URI_TOO_LONG)
    method = _method(headers.get("x-forwarded-method"), "X-Forwarded-Method")
    scheme = _scheme(proto, "X-Forwarded-Proto")
    host, port = _split_host(host_header, scheme, "X-Forwarded-Host")
    path, _, query = uri.partition("?")
    replaced = headers.get("x-replaced-path")
    if replaced:  # Traefik ReplacePath keeps the path the client really asked for here
        path = replaced.partition("?")[0]
    prefix = headers.get("x-forwarded-prefix")
    if prefix:
        path = prefix.rstrip("/") + "/" + path.lstrip("/")
    if not path.startswith("/"):
        raise _bad("X-Forwarded-Uri", "must start with /")
    return RequestInfo(scheme, host, port, path, query, method, headers)
