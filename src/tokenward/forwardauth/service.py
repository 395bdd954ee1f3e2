"""The ``/verify`` decision: resolve the config token (cached), run plugins, ask the policy, build headers.

Nothing here touches HTTP: the route hands over the query parameters and headers and renders the
:class:`Decision`. A warm request decrypts nothing: decoded tokens are cached by their exact string
(bounded LRU, re-validated against revocations, expiry and the key grace window), pointer lookups by
``(store_id, token_id)`` for the store's ``cache_ttl`` (memory stores: until their content changes).
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import quote

from tokenward.changefeed import ChangeFeed
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, Forbidden, NotFound, TokenwardError, error_body
from tokenward.forwardauth.assertions import any_holds, check_assertion
from tokenward.forwardauth.config_token import decode_token
from tokenward.forwardauth.documents import load_text
from tokenward.forwardauth.plugins import Outcome, Plugin, PluginDeps, UserInfo, VerifyRequest, build_plugin
from tokenward.forwardauth.plugins.base import check_header_value
from tokenward.forwardauth.policy_question import verify_question
from tokenward.forwardauth.queries import Query, compile_query
from tokenward.forwardauth.request_info import RequestInfo, reconstruct
from tokenward.forwardauth.schema import (
    Assertion,
    ConfigDocument,
    HeaderSpec,
    PolicyBlock,
    parse_document,
)
from tokenward.forwardauth.stores import StoredValue, TokenStore
from tokenward.keys import Keyring
from tokenward.policy import Policy
from tokenward.policy.questions import ask
from tokenward.storage.changes import ChangeEntry, ChangeKind
from tokenward.storage.config_tokens import ConfigTokenRevocations

__all__ = ["CompiledConfig", "Decision", "ForwardAuthService", "VerifyParams"]

log = logging.getLogger("tokenward.forwardauth")

MAX_POINTER_DEPTH = 4
CACHE_SIZE = 10_000
TOKEN_RECHECK_SECONDS = 60.0
REDIRECT_CODES = frozenset({301, 302, 303, 307, 308, 401, 403})
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]*){2,4}$")
DEFAULT_CHALLENGE = 'Basic realm="tokenward", charset="UTF-8"'
_JSON = (b"content-type", b"application/json")
_PLAIN_REFUSALS = 256  # refusal headers kept encoded (at most this many, each challenge at most _SHORT characters)
_SHORT = 256


@dataclasses.dataclass(slots=True)
class CompiledConfig:
    """A validated document with its plugins built (reused while cached); hot fields copied out of it."""

    document: ConfigDocument
    plugins: list[Plugin[Any]]
    checked_until: float  # re-validate key id / expiry after this (monotonic)
    jti: str | None = None
    exp: int | None = None
    pointer: tuple[str, str] | None = None
    policy: PolicyBlock | None = None
    service_headers: Mapping[str, HeaderSpec] = dataclasses.field(default_factory=dict)
    # per plugin: (plugin, pcb.skip, pcb.stop, assertions)
    steps: list[tuple[Plugin[Any], list[Assertion], list[Assertion], list[Assertion]]] = dataclasses.field(
        default_factory=list
    )

    def __post_init__(self) -> None:
        document, block = self.document, self.document.tokenward
        self.jti, self.exp, self.pointer = document.jti, document.exp, block.pointer
        self.policy, self.service_headers = block.policy, block.custom_service_headers
        self.steps = [(p, p.config.pcb.skip, p.config.pcb.stop, p.config.assertions) for p in self.plugins]


@dataclasses.dataclass(slots=True)
class Decision:
    """The answer to the proxy: status, ASGI headers (lower-case names, UTF-8 values), a JSON error if refused."""

    status: int
    headers: list[tuple[bytes, bytes]]
    error: dict[str, str] | None = None
    #: The rendered response body when the service already has it (a plain refusal: its headers then include the
    #: content type); None: the web layer renders ``error``.
    body: bytes | None = None


@dataclasses.dataclass(frozen=True, slots=True)
class VerifyParams:
    """The ``/verify`` query parameters, validated once (the route caches them per query string).

    Each of ``token``, ``store_id`` and ``token_id`` is the plain parameter, or the compiled
    ``*_query`` to run over the request info when only that was given, or None.
    """

    token: str | Query | None = None
    store_id: str | Query | None = None
    token_id: str | Query | None = None
    fallback: int | None = None
    redirect_code: int = 302
    plain: tuple[str | None, str | None, str | None] | None = None  # the three, when none is a query

    def __post_init__(self) -> None:
        names = (self.token, self.store_id, self.token_id)
        if not any(isinstance(v, Query) for v in names):
            object.__setattr__(self, "plain", names)

    @classmethod
    def parse(cls, params: Mapping[str, str]) -> VerifyParams:
        redirect_code = _int_param(params, "redirect_http_code") or 302
        if redirect_code not in REDIRECT_CODES:
            raise BadRequest(
                "redirect_http_code must be 301, 302, 303, 307, 308, 401 or 403", code=ErrorCode.PARAM_INVALID
            )
        return cls(
            token=_param(params, "config_token"),
            store_id=_param(params, "config_token_store_id"),
            token_id=_param(params, "config_token_id"),
            fallback=_int_param(params, "fallback_plugin"),
            redirect_code=redirect_code,
        )


@dataclasses.dataclass(slots=True)
class _StoreEntry:
    version: int
    until: float
    value: StoredValue
    token: str | None  # the value, stripped, when it has the shape of a token (checked once, not per request)


def _entry(version: int, until: float, value: StoredValue) -> _StoreEntry:
    token = value.strip() if isinstance(value, str) else None
    return _StoreEntry(version, until, value, token if token and _TOKEN_SHAPE.match(token) else None)


class _Revoked:
    """The set of revoked jtis, in memory: read once at start, then kept by the change feed.

    The feed's ``config_token`` entries add to the set as they are read (every instance within the
    feed's bound, woken over Redis by the writer), so no request waits on SQL for it and there is no
    periodic re-read. When the feed resets (it cannot vouch for what it missed) the set is read
    again; until that read succeeds, requests wait
    for it (one read shared by all) and are refused with 503 if it fails. While the feed is stale,
    requests are refused with 503 ``changes_stale`` (the set may miss a revocation made elsewhere).
    """

    def __init__(self, store: ConfigTokenRevocations | None, changes: ChangeFeed | None) -> None:
        self.store = store
        self.changes = changes
        self.ids: set[str] = set()
        self.loaded = store is None
        self._during: set[str] | None = None  # entries applied while a read is in flight
        self._read: asyncio.Task[None] | None = None
        self._epoch = 0
        if changes is not None:
            changes.on(ChangeKind.CONFIG_TOKEN, self.apply)
            changes.on_reset(self.reset)

    def apply(self, entry: ChangeEntry) -> None:
        """A ``config_token`` change (from the feed, or this instance's own revocation)."""
        self.ids.add(entry.key)
        if self._during is not None:
            self._during.add(entry.key)

    def reset(self) -> None:
        """The feed cannot vouch for what it missed: read the whole set again before answering."""
        self.loaded = self.store is None
        self._epoch += 1

    def ready(self) -> bool:
        """The per-request check, without an await: the set may be used as is."""
        return self.loaded and (self.changes is None or self.changes.fresh())

    async def current(self) -> set[str]:
        """The set, read first if needed (503 when the read fails, or the feed is stale)."""
        if not self.loaded:
            if self._read is None or self._read.done():
                self._read = asyncio.ensure_future(self._load(self._epoch))
                self._read.add_done_callback(_retrieve)
            # shield: a request that goes away must not cancel the read the others wait for.
            await asyncio.shield(self._read)
        if self.changes is not None:
            self.changes.check_fresh()
        return self.ids

    async def _load(self, epoch: int) -> None:
        if self.store is None:  # pragma: no cover - loaded from the start
            return
        self._during = set()
        try:
            ids = await self.store.revoked_ids()
            if epoch == self._epoch:  # a reset during the read: read again (the next request starts it)
                self.ids = set(ids) | self._during
                self.loaded = True
        finally:
            self._during = None

    async def close(self) -> None:
        if self._read is not None:
            self._read.cancel()
            await asyncio.gather(self._read, return_exceptions=True)


def _retrieve(done: asyncio.Future[None]) -> None:
    if not done.cancelled():
        done.exception()  # retrieved here, so an error nobody awaited is not logged as lost


class ForwardAuthService:
    """Everything ``/verify`` needs, built once per process."""

    def __init__(
        self,
        *,
        keyring: Callable[[], Keyring],
        stores: Mapping[str, TokenStore] | None = None,
        revocations: ConfigTokenRevocations | None = None,
        deps: PluginDeps | None = None,
        policy: Callable[[], Policy | None] = lambda: None,
        changes: ChangeFeed | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.keyring = keyring
        self.stores = dict(stores or {})
        self.deps = deps or PluginDeps()
        self.policy = policy
        self.clock = clock
        self.monotonic = monotonic
        self.revocations = revocations
        self.changes = changes
        self._revoked = _Revoked(revocations, changes)
        self._tokens: OrderedDict[str, CompiledConfig] = OrderedDict()
        self._plain: OrderedDict[str, CompiledConfig] = OrderedDict()
        self._lookups: dict[tuple[str, str], _StoreEntry] = {}
        #: Refusals without location, plugin headers or custom error headers, by status, challenge, code and detail:
        #: their encoded headers (the JSON content type last), their error and its JSON body, rendered once.
        self._plain_refusals: dict[
            tuple[int, str | None, str, str], tuple[tuple[tuple[bytes, bytes], ...], dict[str, str], bytes]
        ] = {}

    async def warm(self) -> None:
        """Read the revoked jtis now (at start, after the change feed started), so no request pays for it.

        A failed read is logged: the first request reads again (and is refused with 503 if that fails too).
        """
        try:
            await self._revoked.current()
        except TokenwardError as exc:
            log.warning("cannot read the revoked config tokens at start: %s", exc.detail)

    async def close(self) -> None:
        await self._revoked.close()
        for store in self.stores.values():
            await store.close()
        for compiled in [*self._tokens.values(), *self._plain.values()]:
            for plugin in compiled.plugins:
                await plugin.aclose()

    # -- config resolution ------------------------------------------------------------------

    def _compile(self, document: ConfigDocument, mono: float) -> CompiledConfig:
        plugins = [build_plugin(p, self.deps) for p in document.tokenward.plugins]
        return CompiledConfig(document, plugins, mono + TOKEN_RECHECK_SECONDS)

    def _from_token(self, token: str, now: float, mono: float) -> CompiledConfig:
        compiled = self._tokens.get(token)
        if compiled is not None:
            exp = compiled.exp
            if mono < compiled.checked_until and (exp is None or now < exp):
                return compiled
            del self._tokens[token]  # expired or due for a key check: decode again (and raise if bad)
        decoded = decode_token(token, self.keyring(), now=now)
        compiled = self._compile(decoded.document, mono)
        if decoded.document.exp is not None:
            compiled.checked_until = min(compiled.checked_until, mono + max(0.0, decoded.document.exp - now))
        self._tokens[token] = compiled
        if len(self._tokens) > CACHE_SIZE:
            self._tokens.popitem(last=False)
        return compiled

    def _from_plain(self, value: StoredValue, mono: float) -> CompiledConfig:
        key = value if isinstance(value, str) else repr(sorted(value.items()))
        compiled = self._plain.get(key)
        if compiled is None:
            data = load_text(value, what="stored document") if isinstance(value, str) else value
            compiled = self._compile(parse_document(data), mono)
            self._plain[key] = compiled
            if len(self._plain) > CACHE_SIZE:
                self._plain.popitem(last=False)
        return compiled

    def _store(self, store_id: str) -> TokenStore:
        store = self.stores.get(store_id)
        if store is None:
            raise BadRequest(
                f"no config token store {store_id!r} is declared", code=ErrorCode.CONFIG_TOKEN_STORE_UNKNOWN
            )
        store.refresh()
        return store

    def _cached(self, store: TokenStore, key: tuple[str, str], mono: float) -> _StoreEntry | None:
        entry = self._lookups.get(key)
        if entry is not None and entry.version == store.version and mono < entry.until:
            return entry
        return None

    async def _fetch(self, store: TokenStore, key: tuple[str, str], mono: float) -> _StoreEntry:
        value = await store.get(key[1])
        if value is None:
            raise NotFound(f"store {key[0]!r} holds no config token {key[1]!r}", code=ErrorCode.CONFIG_TOKEN_NOT_FOUND)
        ttl = store.cache_ttl if store.cache_ttl > 0 else (float("inf") if store.in_memory else 0.0)
        entry = _entry(store.version, mono + ttl, value)
        if ttl > 0:
            if len(self._lookups) > CACHE_SIZE:
                self._lookups.clear()
            self._lookups[key] = entry
        return entry

    async def resolve(self, *, token: str | None, store_id: str | None, token_id: str | None) -> CompiledConfig:
        """The config in force: from ``token`` or a store, following pointers (at most 4, no loops)."""
        return await self._resolve(token, store_id, token_id)

    async def _resolve(self, token: str | None, store_id: str | None, token_id: str | None) -> CompiledConfig:
        now, mono = self.clock(), self.monotonic()
        revoked = self._revoked.ids if self._revoked.ready() else await self._revoked.current()
        seen: set[tuple[str, str]] = set()
        compiled: CompiledConfig | None = None
        if token is not None:
            compiled = self._from_token(token, now, mono)
        elif store_id is None or token_id is None:
            raise BadRequest(
                "give config_token, or config_token_store_id and config_token_id (or their _query variants)",
                code=ErrorCode.CONFIG_TOKEN_MISSING,
            )
        for _ in range(MAX_POINTER_DEPTH + 1):
            if compiled is not None:
                if compiled.jti is not None and compiled.jti in revoked:
                    raise Forbidden("this config token was revoked", code=ErrorCode.CONFIG_TOKEN_REVOKED)
                pointer = compiled.pointer
                if pointer is None:
                    return compiled
                store_id, token_id = pointer
            if store_id is None or token_id is None:  # pragma: no cover - guarded above
                raise BadRequest("no config token given", code=ErrorCode.CONFIG_TOKEN_MISSING)
            key = (store_id, token_id)
            if key in seen:
                raise BadRequest("config token pointers form a loop", code=ErrorCode.CONFIG_TOKEN_POINTER_LOOP)
            seen.add(key)
            store = self._store(store_id)
            entry = self._cached(store, key, mono) or await self._fetch(store, key, mono)
            if entry.token is not None:
                compiled = self._from_token(entry.token, now, mono)
            elif store.allow_plain:
                compiled = self._from_plain(entry.value, mono)
            else:
                raise BadRequest(
                    f"store {store_id!r} holds a plain document but does not set allow_plain",
                    code=ErrorCode.CONFIG_TOKEN_PLAIN_REFUSED,
                )
        raise BadRequest(f"more than {MAX_POINTER_DEPTH} pointers in a row", code=ErrorCode.CONFIG_TOKEN_POINTER_LOOP)

    # -- the pipeline -----------------------------------------------------------------------

    async def verify(
        self,
        params: VerifyParams | Mapping[str, str],
        headers: Mapping[str, str],
        client_ip: str | None = None,
        request_id: str | None = None,
    ) -> Decision:
        """Decide one ``/verify`` call. Raises TokenwardError (4xx/503) for a bad call or configuration.

        ``client_ip`` is the client's address as the web layer resolved it
        (:class:`tokenward.clientaddr.TrustedProxies`); forwarding headers are not read here.
        """
        if not isinstance(params, VerifyParams):
            params = VerifyParams.parse(params)
        info = reconstruct(headers)
        token, store_id, token_id = params.plain or (
            _run(params.token, "config_token", info),
            _run(params.store_id, "config_token_store_id", info),
            _run(params.token_id, "config_token_id", info),
        )
        compiled = await self._resolve(token, store_id, token_id)
        fallback = params.fallback
        request = VerifyRequest(headers, info, client_ip, request_id)
        failures: list[Outcome | None] = []
        for plugin, skip, stop, assertions in compiled.steps:
            if skip and any_holds(skip, info.as_dict()):
                failures.append(None)
                continue
            outcome = await plugin.verify(request)
            if outcome.ok:
                user = outcome.user or UserInfo()
                if not assertions or all(
                    check_assertion(a, {**info.as_dict(), "userinfo": user.as_dict()}) for a in assertions
                ):
                    return self._allow(compiled, user, info, outcome.headers)
                outcome = Outcome.failure(
                    ErrorCode.ASSERTION_FAILED, "the user does not satisfy the assertions", status=403
                )
            failures.append(outcome)
            if outcome.final:
                return self._refuse(
                    compiled.document.tokenward.custom_error_headers, outcome, info, params.redirect_code
                )
            if stop and any_holds(stop, info.as_dict()):
                break
        chosen = None
        if fallback is not None and 0 <= fallback < len(failures):
            chosen = failures[fallback]
        if chosen is None and failures:
            chosen = failures[-1]  # the usual case: the last plugin ran (no generator to build for it)
            if chosen is None:
                chosen = next((f for f in reversed(failures) if f is not None), None)
        if chosen is None:
            chosen = Outcome.failure(ErrorCode.NO_PLUGIN_RAN, "every plugin was skipped")
        return self._refuse(compiled.document.tokenward.custom_error_headers, chosen, info, params.redirect_code)

    def _allow(
        self, compiled: CompiledConfig, user: UserInfo, info: RequestInfo, extra: tuple[tuple[str, str], ...] = ()
    ) -> Decision:
        if compiled.policy is not None:
            self._check_policy(compiled.policy, user, info)
        out = user.remote_headers()
        if extra:
            out += [_encoded(k, v) for k, v in extra if not _CTL.search(v)]
        if compiled.service_headers:
            for name, value in _custom_headers(compiled.service_headers, info, user):
                check_header_value(value)
                out.append(_encoded(name, value))
        return Decision(200, out)

    def _check_policy(self, spec: PolicyBlock, user: UserInfo, info: RequestInfo) -> None:
        question = verify_question(spec, user, info)  # the same question `policy check --as-verify` asks
        policy = self.policy()
        if policy is None:
            raise Forbidden("no policy is loaded", code=ErrorCode.POLICY_UNAVAILABLE)
        try:
            policy.engine(question.file)
        except (KeyError, TokenwardError):
            raise Forbidden(
                "this instance does not serve the policy file needed", code=ErrorCode.POLICY_UNAVAILABLE
            ) from None
        subject, dom, obj, act = question.subject, question.domain, question.object, question.action
        if not ask(policy, question.file, subject, dom, obj, act):
            raise Forbidden(f"the policy does not allow {act} on {obj}", code=ErrorCode.POLICY_DENIED)

    def _refuse(self, spec: Mapping[str, HeaderSpec], outcome: Outcome, info: RequestInfo, redirect: int) -> Decision:
        status = outcome.status
        challenge = outcome.challenge
        if outcome.location is None and not outcome.headers and not spec and len(challenge or "") <= _SHORT:
            # The usual refusal (a 401 and its challenge): its headers and body depend on the status, challenge,
            # code and detail only, and a flood of bad credentials brings the same few, so they are encoded, checked
            # and rendered once. Kept small: a forward plugin passes on its upstream's challenge, which may differ
            # every time.
            key = (status, challenge, outcome.code, outcome.detail)
            plain = self._plain_refusals.get(key)
            if plain is None:
                error = error_body(outcome.code or ErrorCode.UNAUTHORIZED, outcome.detail)
                headers = (*self._refusal_headers(spec, outcome, info, status), _JSON)
                plain = (headers, error, json.dumps(error).encode("utf-8"))
                if len(self._plain_refusals) >= _PLAIN_REFUSALS:
                    self._plain_refusals.clear()
                self._plain_refusals[key] = plain
            return Decision(status, list(plain[0]), plain[1], plain[2])
        if outcome.location is not None:
            status = redirect
        return Decision(
            status,
            self._refusal_headers(spec, outcome, info, status),
            error_body(outcome.code or ErrorCode.UNAUTHORIZED, outcome.detail),
        )

    def _refusal_headers(
        self, spec: Mapping[str, HeaderSpec], outcome: Outcome, info: RequestInfo, status: int
    ) -> list[tuple[bytes, bytes]]:
        out: list[tuple[str, str]] = []
        if outcome.location is not None:
            out.append(("Location", outcome.location))
        if status == 401:
            out.append(("WWW-Authenticate", outcome.challenge or DEFAULT_CHALLENGE))
        out += outcome.headers
        if spec:
            try:
                out += _custom_headers(spec, info, UserInfo())
            except TokenwardError as exc:
                log.warning("custom_error_headers skipped: %s", exc.detail)
        return [_encoded(k, v) for k, v in out if not _CTL.search(v)]


def _param(params: Mapping[str, str], name: str) -> str | Query | None:
    value = params.get(name)
    if value is not None:
        return value
    query = params.get(f"{name}_query")
    if query is None:
        return None
    return compile_query(params.get(f"{name}_query_engine", "jp"), query)


def _run(value: str | Query | None, name: str, info: RequestInfo) -> str | None:
    if value is None or isinstance(value, str):
        return value
    return value.one(info.as_dict(), name=f"{name}_query")


def _int_param(params: Mapping[str, str], name: str) -> int | None:
    value = params.get(name)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 4:
        raise BadRequest(f"{name} must be a small whole number", code=ErrorCode.PARAM_INVALID)
    return int(value)


def _encode(value: str, encoding: str) -> str:
    if encoding == "base64":
        return base64.b64encode(value.encode("utf-8")).decode("ascii")
    if encoding == "url":
        return quote(value, safe="")
    return value


def _custom_headers(spec: Mapping[str, HeaderSpec], info: RequestInfo, user: UserInfo) -> list[tuple[str, str]]:
    out = []
    for name, header in spec.items():
        if header.source == "static":
            value = header.value
        else:
            data = user.as_dict() if header.source == "userinfo" else info.as_dict()
            found = compile_query(header.query_engine, header.value).values(data)
            parts = [v for v in found if v is not None and not isinstance(v, dict)]
            flat = [x for v in parts for x in (v if isinstance(v, list) else [v])]
            value = ",".join(str(v) for v in flat)
        out.append((name, _encode(value, header.encoding)))
    return out


_CTL = re.compile(r"[\r\n\0]")


def _encoded(name: str, value: str) -> tuple[bytes, bytes]:
    return name.lower().encode("latin-1"), value.encode("utf-8")
