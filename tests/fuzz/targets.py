"""Every parser of untrusted input, as one fuzz target each, shared by hypothesis and atheris.

A target takes ``bytes`` (what atheris hands out) or ``str`` and feeds it to one parser. The
contract checked everywhere: the parser returns a value or raises a :class:`TokenwardError`
subclass (which the web layer renders as a 4xx JSON body); any other exception escapes the
target and fails the property (hypothesis) or stops the run with a crash file (atheris).

Keys and clocks are fixed here so that a failing input replays exactly.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from joserfc.jwk import KeySet

from tokenward.apptokens import format as apptoken_format
from tokenward.configsync.manifest import Manifest
from tokenward.durations import parse_duration
from tokenward.errors import TokenwardError
from tokenward.forwardauth.config_token import decode_token, encode_token
from tokenward.forwardauth.plugins.basic import basic_credentials, bearer_token
from tokenward.forwardauth.queries import compile_query
from tokenward.forwardauth.request_info import reconstruct
from tokenward.forwardauth.schema import parse_document
from tokenward.identity import apps, captcha, client_tokens, source
from tokenward.identity.encoding import b64u_decode
from tokenward.identity.resources import ResourceRegistry
from tokenward.keys import Keyring, Purpose, Secret, TimeCode
from tokenward.policy import DEFAULT_MODEL, build_policy
from tokenward.web.auth import parse_basic

__all__ = [
    "CAPTCHA_KEY",
    "CLIENT_KEYS",
    "KEYRING",
    "NOW",
    "SERVER",
    "TARGETS",
    "Target",
    "sample_captcha",
    "sample_client_token",
    "sample_config_token",
    "sample_manifest",
    "sample_source_identifier",
]

NOW = 1_776_880_800.0  # a fixed clock (15-minute aligned), so every input replays
SERVER = "auth.example.com"
KEYRING = Keyring(TimeCode(label=int(NOW // 60), secret=Secret(bytes(range(32)))))
CAPTCHA_KEY = X25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
CLIENT_KEYS = KeySet.import_key_set(client_tokens.jwks(KEYRING, now=NOW))  # type: ignore[arg-type]


def _text(data: bytes) -> str:
    return data.decode("utf-8", "replace")


# --- the parsers --------------------------------------------------------------------------------


def config_token(text: str) -> object:
    return decode_token(text, KEYRING, now=NOW)


def config_document(data: bytes) -> object:
    """A config token's JSON payload (what a signed-only JWS or a store row carries)."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None  # not JSON: the token layer refuses it before the schema sees it
    return parse_document(doc)


def basic_header(text: str) -> object:
    """``Authorization`` as /verify's plugins and the management API read it."""
    found = basic_credentials({"authorization": text})
    if isinstance(found, TokenwardError):
        raise found
    bearer_token({"authorization": text})
    _, _, credentials = text.partition(" ")
    return parse_basic(credentials)


def policy_file(data: bytes) -> object:
    """A user policy CSV under both dialects (rows, quoting, patterns)."""
    build_policy({"userpolicy.csv": data}, dialect="compat")
    return build_policy({"userpolicy.csv": data}, dialect="glob")


def policy_model(data: bytes) -> object:
    return build_policy({"model.conf": data})


def captcha_envelope(text: str) -> object:
    return captcha.open_captcha(text, CAPTCHA_KEY)


def source_identifier(text: str) -> object:
    return source.open_source_identifier(text, keyring=KEYRING, now=NOW)


def client_token(text: str) -> object:
    return client_tokens.verify_client_token(text, CLIENT_KEYS, now=NOW, issuer=SERVER)


def bundle_manifest(data: bytes) -> object:
    return Manifest.parse(data, server=SERVER)


def app_token(text: str) -> object:
    return apptoken_format.parse(text)


def time_code(text: str) -> object:
    return TimeCode.parse(text)


_ENGINES = ("jp", "template")
_QUERY_DATA: dict[str, Any] = {"user": {"name": "alice", "groups": ["a", "b"], "n": 3}, "ok": True}


def query_expression(text: str) -> object:
    """A ``*_query`` of a config token: the first character picks the engine, the rest is the query."""
    engine = _ENGINES[ord(text[0]) % len(_ENGINES)] if text else "jp"
    query = compile_query(engine, text[1:])
    return query.values(_QUERY_DATA)


def expiry(text: str) -> object:
    """An app token's ``expiry`` / ``expires_in`` (``72h``, ``1h30m``)."""
    return parse_duration(text)


def origin(text: str) -> object:
    """The ``origin`` a browser's client app sends with a captcha request."""
    return apps.origin_host(text)


def client_ids_file(data: bytes) -> object:
    """``clientids.json`` (from the data dir or the S3 bundle)."""
    return apps.ClientRegistry.parse(data)


def resources_file(data: bytes) -> object:
    """``resources.json`` (from the data dir or the S3 bundle)."""
    return ResourceRegistry.parse(data)


def base64url_field(text: str) -> object:
    """Every base64url field of the identity API (session keys, signatures, captcha bodies)."""
    return b64u_decode(text, field="session_key", length=32)


def forwarded_headers(data: bytes) -> object:
    """The ``X-Forwarded-*`` / ``X-Original-*`` headers /verify rebuilds the request from (JSON object of strings)."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(doc, dict):
        return None
    return reconstruct({str(k).lower(): str(v) for k, v in doc.items()})


@dataclass(frozen=True, slots=True)
class Target:
    name: str
    kind: Literal["text", "bytes"]
    parse: Callable[[Any], object]

    def run_bytes(self, data: bytes) -> object:
        """Feed raw fuzzer bytes; a TokenwardError is an accepted outcome and returns None."""
        try:
            return self.parse(_text(data) if self.kind == "text" else data)
        except TokenwardError:
            return None


TARGETS: dict[str, Target] = {
    t.name: t
    for t in (
        Target("config_token", "text", config_token),
        Target("config_document", "bytes", config_document),
        Target("basic_header", "text", basic_header),
        Target("policy_file", "bytes", policy_file),
        Target("policy_model", "bytes", policy_model),
        Target("captcha_envelope", "text", captcha_envelope),
        Target("source_identifier", "text", source_identifier),
        Target("client_token", "text", client_token),
        Target("bundle_manifest", "bytes", bundle_manifest),
        Target("app_token", "text", app_token),
        Target("time_code", "text", time_code),
        Target("query_expression", "text", query_expression),
        Target("forwarded_headers", "bytes", forwarded_headers),
        Target("expiry", "text", expiry),
        Target("origin", "text", origin),
        Target("client_ids_file", "bytes", client_ids_file),
        Target("resources_file", "bytes", resources_file),
        Target("base64url_field", "text", base64url_field),
    )
}


# --- valid samples: the seeds mutations start from, and the round-trip properties' subjects --------


def sample_config_token(*, signed_only: bool = False) -> str:
    doc = {"tokenward": {"plugins": [{"type": "noop"}]}, "exp": int(NOW) + 3600}
    return encode_token(doc, KEYRING, signed_only=signed_only)


def sample_source_identifier(subject: str = "alice@example.com", scopes: tuple[str, ...] = ("read",)) -> str:
    key_id, key = KEYRING.key(Purpose.SOURCE_IDENTIFIER)
    identity = source.SourceIdentity(
        session_id="s1",
        kind="user",
        subject=subject,
        client_id="A" * 40,
        app_hash="B" * 128,
        scopes=scopes,
        session_key=client_tokens.b64u_of_public(CAPTCHA_KEY),
        issued_at=int(NOW),
        expires_at=int(NOW) + 600,
    )
    return source.seal_source_identifier(identity, key_id=key_id, key=key, nonce=bytes(12))


def sample_captcha(code: str = "ABCDE", subject: str = "alice@example.com", aead: str = captcha.DEFAULT_AEAD) -> str:
    plain = captcha.CaptchaPlaintext(
        captcha_id="c" * 22,
        code=code,
        server=SERVER,
        subject=subject,
        client_name="Portal",
        origin="https://auth.example.com",
        expires_at=int(NOW) + 300,
    )
    return captcha.seal_captcha(plain, CAPTCHA_KEY.public_key().public_bytes_raw(), aead=aead)


def sample_client_token(source_name: str = "alice@example.com", scopes: tuple[str, ...] = ("read",)) -> str:
    claims = client_tokens.ClientTokenClaims(
        issuer=SERVER,
        source=source_name,
        destination="bob@example.com",
        source_key=client_tokens.b64u_of_public(CAPTCHA_KEY),
        destination_key=client_tokens.b64u_of_public(CAPTCHA_KEY),
        client_id="A" * 40,
        scopes=scopes,
        token_id="t1",
        issued_at=int(NOW),
        expires_at=int(NOW) + 300,
    )
    return client_tokens.sign_client_token(claims, KEYRING)


def sample_manifest() -> bytes:
    from tokenward.configsync.manifest import ObjectEntry, object_name, sha256_hex

    digest = sha256_hex(b"p, alice@example.com, auth.example.com, TOKENWARD, admin\n")
    entry = ObjectEntry(object_name(SERVER, "userpolicy", digest), digest, 57, False)
    manifest = Manifest(
        server=SERVER,
        version=3,
        saved_at="2026-01-01T00:00:00Z",
        saved_by="ops",
        objects={"userpolicy": entry},
        key_id=KEYRING.current.key_id,
        settings={"policy_dialect": "glob"},
    )
    return manifest.render()


def _sample_clients() -> bytes:
    registry, _ = apps.ClientRegistry().register(
        name="App", origins=["https://app.example.com"], client_id="A" * 40, now=int(NOW)
    )
    return registry.render()


def seeds() -> dict[str, list[bytes]]:
    """A starting corpus per target: valid inputs the fuzzers mutate."""
    user_row = (
        b"p, alice@example.com, auth.example.com, TOKENWARD, admin\np, /*@example.com, auth.example.com, X, login\n"
    )
    return {
        "config_token": [sample_config_token().encode(), sample_config_token(signed_only=True).encode()],
        "config_document": [json.dumps({"tokenward": {"plugins": [{"type": "noop"}]}}).encode()],
        "basic_header": [b"Basic " + base64.b64encode(b"alice:twa_secret")],
        "policy_file": [user_row],
        "policy_model": [DEFAULT_MODEL.encode()],
        "captcha_envelope": [sample_captcha().encode()],
        "source_identifier": [sample_source_identifier().encode()],
        "client_token": [sample_client_token().encode()],
        "bundle_manifest": [sample_manifest()],
        "app_token": [apptoken_format.generate()[0].encode()],
        "time_code": [KEYRING.current.format().encode()],
        "query_expression": [b"b$.user.name", b"a{{ user.name | upper }}"],
        "expiry": [b"72h", b"1h30m"],
        "origin": [b"https://app.example.com:8443", b"[::1]:8080"],
        "client_ids_file": [_sample_clients()],
        "resources_file": [ResourceRegistry().register("api.example.com", "A" * 43).render()],
        "base64url_field": [client_tokens.b64u_of_public(CAPTCHA_KEY).encode()],
        "forwarded_headers": [
            json.dumps(
                {
                    "X-Forwarded-Proto": "https",
                    "X-Forwarded-Host": "a.example",
                    "X-Forwarded-Uri": "/x",
                    "X-Forwarded-Method": "GET",
                }
            ).encode()
        ],
    }
