"""What a resource server decides about a request under a client token (docs/resource-servers.md).

:class:`Verifier` checks the token once — signature against the issuer's JWKS, issuer, window
with bounded skew, destination, the destination key, client ID, origin (app hash) and scopes —
and keeps the outcome until the token expires, so a client reusing its token costs a dictionary
lookup. Each request then proves itself with the channel key (``Tokenward-Proof`` or a sealed
body, :mod:`tokenward.client.channel`) and is accepted once (:mod:`tokenward.client.replay`).
"""

from __future__ import annotations

import dataclasses
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from cryptography.hazmat.primitives.ciphers.aead import ChaCha20Poly1305

from tokenward.client.channel import SealedRequest, open_request, parse_proof, verify_proof
from tokenward.client.jwks import JWKSCache
from tokenward.client.regulation import FailureRegulator
from tokenward.client.replay import MemoryReplayGuard, ReplayGuard
from tokenward.errorcodes import ErrorCode
from tokenward.errors import Forbidden, TokenwardError, Unauthorized
from tokenward.identity.apps import app_hash_of_origin, hashes_equal
from tokenward.identity.client_tokens import (
    ClientTokenClaims,
    b64u_of_public,
    channel_key,
    key_id_of,
    verify_client_token,
)

__all__ = ["Caller", "SessionKeys", "VerifiedToken", "Verifier"]

#: Refusals that stay true for the token's whole life (cached with the token; others are re-checked).
_PERMANENT = frozenset(
    {
        ErrorCode.CLIENT_TOKEN_INVALID,
        ErrorCode.CLIENT_TOKEN_FOREIGN,
        ErrorCode.CLIENT_TOKEN_EXPIRED,
        ErrorCode.CLIENT_TOKEN_WRONG_DESTINATION,
        ErrorCode.CLIENT_NOT_ALLOWED,
        ErrorCode.ORIGIN_NOT_ALLOWED,
        ErrorCode.SCOPE_MISSING,
    }
)
_MAX_TOKEN_CHARS = 8192


def _remember(cache: OrderedDict[str, Any], size: int, token: str, outcome: Any) -> None:
    # OrderedDict: dropping the oldest is O(1) (a plain dict's next(iter()) scans deleted slots).
    if len(cache) >= size:
        cache.popitem(last=False)
    cache[token] = outcome


@dataclass(frozen=True, slots=True)
class Caller:
    """The verified caller handed to the application (``scope["tokenward.caller"]``)."""

    subject: str
    client_id: str
    #: The token's scopes (granted by clientscopespolicy.csv) plus those its roles map to here.
    scopes: frozenset[str]
    #: The scopes/roles exactly as the token carries them.
    roles: tuple[str, ...]
    #: App hash of the caller's client app (docs/protocol.md §2); "" for a resource.
    app_hash: str
    token_id: str
    expires_at: int
    #: True when this request came sealed (its answer is sealed too).
    sealed: bool = False


class SessionKeys:
    """The resource server's X25519 session private keys (newest first, the last ``keep`` kept).

    A client token names the destination's session key (``dpk``); after a re-login the previous
    key stays here so tokens issued for it keep working until they expire.
    """

    def __init__(self, *keys: X25519PrivateKey, keep: int = 4) -> None:
        self._keep = keep
        self._keys: dict[str, X25519PrivateKey] = {}
        #: Bumped on every change (verified tokens re-check their destination key after one).
        self.generation = 0
        for key in keys:
            self.add(key)

    def add(self, key: X25519PrivateKey) -> None:
        self._keys = {b64u_of_public(key): key, **self._keys}
        while len(self._keys) > self._keep:
            self._keys.pop(next(reversed(self._keys)))
        self.generation += 1

    def find(self, public: str) -> X25519PrivateKey | None:
        return self._keys.get(public)

    def __len__(self) -> int:
        return len(self._keys)


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A client token that passed every check, with the channel cipher for its requests."""

    token: str
    claims: ClientTokenClaims
    caller: Caller
    aead: ChaCha20Poly1305
    kid: str
    valid_until: float  # exp + leeway
    #: (JWKS generation, session-key generation) when kid and destination key were last found.
    generations: tuple[int, int] = (-1, -1)


class Verifier:
    """Checks client tokens and request proofs for one resource (``resource`` = the token's ``dst``)."""

    def __init__(
        self,
        *,
        issuer: str,
        resource: str,
        jwks: JWKSCache,
        session_keys: SessionKeys,
        replay: ReplayGuard | None = None,
        clock: Callable[[], float] = time.time,
        leeway_seconds: int = 30,
        proof_window_seconds: int = 60,
        allowed_client_ids: Collection[str] | None = None,
        allowed_app_hashes: Collection[str] | None = None,
        allowed_origins: Collection[str] | None = None,
        roles: Mapping[str, Iterable[str]] | None = None,
        required_scopes: Iterable[str] = (),
        cache_size: int = 100_000,
        refused_cache_size: int = 10_000,
        regulator: FailureRegulator | None = None,
    ) -> None:
        self.issuer = issuer
        self.resource = resource
        self.jwks = jwks
        self.session_keys = session_keys
        self.replay: ReplayGuard = replay if replay is not None else MemoryReplayGuard()
        self._memory_replay = self.replay if isinstance(self.replay, MemoryReplayGuard) else None
        self.clock = clock
        self.leeway = leeway_seconds
        self.proof_window = proof_window_seconds
        self._client_ids = None if allowed_client_ids is None else frozenset(c.upper() for c in allowed_client_ids)
        hashes = [h.upper() for h in allowed_app_hashes or ()] + [app_hash_of_origin(o) for o in allowed_origins or ()]
        self._app_hashes = hashes if allowed_app_hashes is not None or allowed_origins is not None else None
        self._roles = {role: frozenset(scopes) for role, scopes in (roles or {}).items()}
        self._required = frozenset(required_scopes)
        self._cache: OrderedDict[str, VerifiedToken] = OrderedDict()
        self._cache_size = cache_size
        # Refusals live apart: a flood of bad tokens must not evict the good ones.
        self._refused: OrderedDict[str, TokenwardError] = OrderedDict()
        self._refused_size = refused_cache_size
        #: Regulates failed first-sight checks per client address (pass ``None`` to switch it off).
        self.regulator = regulator if regulator is not None else FailureRegulator()

    # -- the token -----------------------------------------------------------------------------

    async def verify_token(self, token: str, *, client: str | None = None) -> VerifiedToken:
        """The verified token, from the cache when it was seen before (raises the refusal otherwise).

        ``client`` (the peer's address) is regulated: too many failed first-sight checks from it
        and its new tokens get 429 ``too_many_attempts`` for a while (``regulator``).
        """
        now = self.clock()
        hit = self._cache.get(token)
        if hit is not None and now < hit.valid_until:
            jwks, keys = self.jwks, self.session_keys
            if now >= jwks.fresh_until:
                await jwks.key_set()  # refresh, or 503 once the stale bound has passed
            # Unchanged key sets since the token was checked: its kid and session key still hold.
            if hit.generations == (jwks.generation, keys.generation):
                return hit
            if hit.kid in jwks.kids and keys.find(hit.claims.destination_key) is not None:
                hit = dataclasses.replace(hit, generations=(jwks.generation, keys.generation))
                self._cache[token] = hit
                return hit
        if hit is not None:
            del self._cache[token]
        else:
            refused = self._refused.get(token)
            if refused is not None:
                raise refused.with_traceback(None)  # a fresh traceback: re-raising would lengthen the old one
        regulator = self.regulator
        if regulator is not None and client is not None:
            regulator.check(client, now=now)
        try:
            verified = await self._verify(token, now)
        except TokenwardError as refusal:
            if refusal.error_code in _PERMANENT:
                _remember(self._refused, self._refused_size, token, refusal)
            if regulator is not None and client is not None and refusal.status == 401:
                regulator.failed(client, now=now)
            raise
        _remember(self._cache, self._cache_size, token, verified)
        return verified

    async def _verify(self, token: str, now: float) -> VerifiedToken:
        if len(token) > _MAX_TOKEN_CHARS:
            raise Unauthorized(
                "the client token is malformed or its signature is wrong", code=ErrorCode.CLIENT_TOKEN_INVALID
            )
        kid = key_id_of(token)
        if kid is None:  # tokenward always names its key: garbage is refused before any parsing
            raise Unauthorized(
                "the client token is malformed or its signature is wrong", code=ErrorCode.CLIENT_TOKEN_INVALID
            )
        keys = await self.jwks.key_set(kid)
        claims = verify_client_token(token, keys, now=now, issuer=self.issuer, leeway=self.leeway)
        if claims.destination != self.resource:
            raise Unauthorized(
                f"the client token is for {claims.destination!r}, not this resource ({self.resource}): "
                "ask the token server for a client token with this destination",
                code=ErrorCode.CLIENT_TOKEN_WRONG_DESTINATION,
            )
        private = self.session_keys.find(claims.destination_key)
        if private is None:
            raise Unauthorized(
                "the client token names a session key this resource server does not hold (it logged in again): "
                "ask for a new client token",
                code=ErrorCode.CLIENT_TOKEN_NOT_FOR_ME,
            )
        self._authorize(claims)
        scopes = frozenset(claims.scopes).union(*(self._roles.get(s, frozenset()) for s in claims.scopes))
        caller = Caller(
            subject=claims.source,
            client_id=claims.client_id,
            scopes=scopes,
            roles=claims.scopes,
            app_hash=claims.app_hash,
            token_id=claims.token_id,
            expires_at=claims.expires_at,
        )
        if not self._required <= scopes:
            missing = ", ".join(sorted(self._required - scopes))
            raise Forbidden(
                f"the client token lacks the scope(s) {missing} this resource requires", code=ErrorCode.SCOPE_MISSING
            )
        return VerifiedToken(
            token=token,
            claims=claims,
            caller=caller,
            aead=ChaCha20Poly1305(channel_key(private, claims)),
            kid=kid,
            valid_until=claims.expires_at + self.leeway,
            generations=(self.jwks.generation, self.session_keys.generation),
        )

    def _authorize(self, claims: ClientTokenClaims) -> None:
        if self._client_ids is not None and claims.client_id.upper() not in self._client_ids:
            raise Forbidden(
                "this resource server does not accept requests from this client app", code=ErrorCode.CLIENT_NOT_ALLOWED
            )
        if self._app_hashes is not None and not any(hashes_equal(claims.app_hash, h) for h in self._app_hashes):
            raise Forbidden(
                "the caller's app origin (app hash) is not one this resource server accepts",
                code=ErrorCode.ORIGIN_NOT_ALLOWED,
            )

    # -- each request --------------------------------------------------------------------------

    async def check_proof(self, verified: VerifiedToken, proof: str, *, method: str, target: str) -> None:
        """Accept an unsealed request's ``Tokenward-Proof`` once."""
        ts, nonce, tag = parse_proof(proof)
        now = self.clock()
        self._check_time(ts, now)
        token_id = verified.claims.token_id
        verify_proof(verified.aead, token_id=token_id, ts=ts, nonce=nonce, tag=tag, method=method, target=target)
        await self._first_use(token_id, nonce, ts, now)

    async def open_sealed(self, verified: VerifiedToken, body: bytes, *, method: str, target: str) -> SealedRequest:
        """Open a sealed request body and accept it once."""
        token_id = verified.claims.token_id
        opened = open_request(verified.aead, token_id=token_id, method=method, target=target, data=body)
        if opened.client_token != verified.token:
            raise Unauthorized(
                "the sealed body names another client token than the Authorization header",
                code=ErrorCode.SEALED_BODY_UNREADABLE,
            )
        now = self.clock()
        self._check_time(opened.ts, now)
        await self._first_use(token_id, opened.nonce_bytes, opened.ts, now)
        return opened

    def _check_time(self, ts: int, now: float) -> None:
        if abs(now - ts) > self.proof_window:
            raise Unauthorized(
                f"the request was made at {ts}, more than {self.proof_window} s from this server's clock "
                "(a replay, or clocks out of sync)",
                code=ErrorCode.REQUEST_STALE,
            )

    async def _first_use(self, token_id: str, nonce: bytes, ts: int, now: float) -> None:
        request_id = f"{token_id}|{nonce.hex()}"
        until = ts + self.proof_window + 1
        memory = self._memory_replay
        first = (
            memory.check(request_id, now=now, until=until)
            if memory is not None
            else await self.replay.first_use(request_id, now=now, until=until)
        )
        if not first:
            raise Unauthorized("this request was already received once (a replay)", code=ErrorCode.REQUEST_REPLAYED)
