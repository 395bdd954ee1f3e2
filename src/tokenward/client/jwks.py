"""The issuer's JWKS as a resource server keeps it: fetched, cached, refreshed, bounded when stale.

* Keys are fetched at first use and again every ``refresh_seconds``; a token whose ``kid`` is not
  in the set triggers one refetch (at most every ``min_refetch_seconds``), so a time-code rotation
  is picked up at once and a key dropped by the issuer stops verifying at the next refresh.
* When the issuer cannot be reached, the last good set is used until ``max_stale_seconds`` after
  the last successful fetch; after that (or before any fetch succeeded) requests get 503
  ``jwks_unavailable``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import httpx
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from tokenward.errorcodes import ErrorCode
from tokenward.errors import ServiceUnavailable

__all__ = ["JWKSCache"]

log = logging.getLogger(__name__)

_MAX_JWKS_BYTES = 64 * 1024


class JWKSCache:
    """The JWKS at ``url``, fetched with ``http`` (an :class:`httpx.AsyncClient` the caller owns)."""

    def __init__(
        self,
        url: str,
        *,
        http: httpx.AsyncClient,
        clock: Callable[[], float],
        refresh_seconds: float = 300.0,
        min_refetch_seconds: float = 30.0,
        max_stale_seconds: float = 3600.0,
    ) -> None:
        self.url = url
        self._http = http
        self._clock = clock
        self._refresh = refresh_seconds
        self._min_refetch = min_refetch_seconds
        self._max_stale = max_stale_seconds
        self._keys: KeySet | None = None
        self._kids: frozenset[str] = frozenset()
        self._fetched_at = float("-inf")  # last success
        self._tried_at = float("-inf")  # last attempt
        self._lock = asyncio.Lock()
        #: Bumped on every successful fetch whose key ids differ (callers re-check what they cached under old keys).
        self.generation = 0
        #: Until when the set needs no refresh (the request path compares with it, no call).
        self.fresh_until = float("-inf")

    @property
    def kids(self) -> frozenset[str]:
        """Key ids of the set in use (empty before the first fetch)."""
        return self._kids

    def fresh(self, now: float) -> bool:
        """True when the cached set needs no refresh at ``now`` (the request path's check, no await)."""
        return self._keys is not None and now - self._fetched_at < self._refresh

    async def key_set(self, kid: str | None = None) -> KeySet:
        """The set to verify with; refreshed when old, or when ``kid`` is unknown (rate-limited)."""
        if self._due(kid, self._clock()):
            async with self._lock:
                now = self._clock()
                if self._due(kid, now):
                    await self._fetch(now)
        keys = self._keys
        if keys is None or self._clock() - self._fetched_at > self._max_stale:
            raise ServiceUnavailable(
                f"the issuer's signing keys ({self.url}) cannot be fetched and no recent copy is cached; "
                "check that the resource server can reach the token server",
                code=ErrorCode.JWKS_UNAVAILABLE,
            )
        return keys

    def _due(self, kid: str | None, now: float) -> bool:
        # Attempts (failed ones too) are spaced by min_refetch_seconds: a down issuer is not hammered.
        if now - self._tried_at < self._min_refetch:
            return False
        return not self.fresh(now) or (kid is not None and kid not in self._kids)

    async def _fetch(self, now: float) -> None:
        self._tried_at = now
        try:
            response = await self._http.get(self.url, headers={"accept": "application/json"})
            if response.status_code != 200 or len(response.content) > _MAX_JWKS_BYTES:
                raise ValueError(f"status {response.status_code}, {len(response.content)} bytes")
            doc: Any = response.json()
            keys = KeySet.import_key_set(doc)
        except (httpx.HTTPError, ValueError, TypeError, KeyError, JoseError) as exc:
            age = "never fetched" if self._keys is None else f"last fetched {now - self._fetched_at:.0f} s ago"
            log.warning("JWKS %s cannot be fetched (%s); %s", self.url, type(exc).__name__, age)
            return
        kids = frozenset(str(key.kid) for key in keys.keys if key.kid)
        if kids != self._kids:
            self.generation += 1
        self._keys, self._kids, self._fetched_at = keys, kids, now
        self.fresh_until = now + self._refresh
