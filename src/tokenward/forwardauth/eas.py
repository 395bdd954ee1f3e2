"""Import eas (external-auth-server) config tokens.

An eas token is ``base64(AES-256-CBC(EVP_BytesToKey-MD5(encrypt_secret), JWT-HS256(sign_secret, payload)))``
— Node's deprecated ``crypto.createCipher`` (no salt, no MAC; the JWT signature is its only
integrity check). :func:`open_eas_token` opens one given its two secrets; :func:`convert` maps its
``eas`` block to a tokenward document and names everything it could not map. We never *make* eas
tokens.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import warnings
from typing import Any
from urllib.parse import unquote

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from joserfc import jwt
from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import OctKey

from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest
from tokenward.forwardauth.schema import parse_document

__all__ = ["convert", "open_eas_token"]

MAX_EAS_TOKEN = 65_536
_RULE_METHODS = {"eq", "in", "contains", "regex"}
MIN_JWT_SECRET = 16  # the jwt plugin's own minimum (forwardauth.schema)


def _evp_bytes_to_key(password: bytes) -> tuple[bytes, bytes]:
    # OpenSSL EVP_BytesToKey(MD5, no salt, 1 round): what Node's createCipher uses.
    out, block = b"", b""
    while len(out) < 48:
        block = hashlib.md5(block + password).digest()  # eas's format, read only, never written
        out += block
    return out[:32], out[32:48]


def open_eas_token(token: str, *, sign_secret: str, encrypt_secret: str) -> dict[str, Any]:
    """The payload of an eas config token (400 ``eas_token_invalid`` if it does not open or verify)."""
    text = unquote(token.strip())
    if not text or len(text) > MAX_EAS_TOKEN:
        raise BadRequest("the eas token is empty or too long", code=ErrorCode.EAS_TOKEN_INVALID)
    try:
        raw = base64.b64decode(text, validate=True)
        key, iv = _evp_bytes_to_key(encrypt_secret.encode("utf-8"))
        decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
        padded = decryptor.update(raw) + decryptor.finalize()
        unpadder = padding.PKCS7(128).unpadder()
        inner = (unpadder.update(padded) + unpadder.finalize()).decode("utf-8")
    except (binascii.Error, ValueError):
        raise BadRequest(
            "the eas token does not decrypt with this encrypt secret", code=ErrorCode.EAS_TOKEN_INVALID
        ) from None
    try:
        with warnings.catch_warnings():  # eas secrets are whatever length the operator chose
            warnings.simplefilter("ignore", SecurityWarning)
            sign_key = OctKey.import_key(sign_secret.encode("utf-8"))
        claims = jwt.decode(inner, sign_key, algorithms=["HS256"]).claims
    except (JoseError, ValueError, TypeError):
        raise BadRequest(
            "the eas token's JWT does not verify with this sign secret", code=ErrorCode.EAS_TOKEN_INVALID
        ) from None
    if not isinstance(claims.get("eas"), dict):
        raise BadRequest("the eas token has no eas block", code=ErrorCode.EAS_TOKEN_INVALID)
    return dict(claims)


def _rule(rule: Any, where: str, notes: list[str]) -> dict[str, Any] | None:
    if not isinstance(rule, dict) or rule.get("method") not in _RULE_METHODS:
        notes.append(f"{where}: rule method {rule.get('method') if isinstance(rule, dict) else rule!r} not mapped")
        return None
    out = {k: rule[k] for k in ("method", "value", "negate", "case_insensitive") if k in rule}
    if rule["method"] == "regex" and isinstance(rule.get("value"), str):
        match = re.fullmatch(r"/(.*)/([a-z]*)", rule["value"], re.DOTALL)
        if match:  # eas writes JavaScript /pattern/flags
            out["value"] = match.group(1)
            if "i" in match.group(2):
                out["case_insensitive"] = True
    return out


def _assertions(items: Any, where: str, notes: list[str]) -> list[dict[str, Any]]:
    out = []
    for i, item in enumerate(items if isinstance(items, list) else []):
        engine = item.get("query_engine", "jp") if isinstance(item, dict) else None
        if engine != "jp":
            notes.append(f"{where}.{i}: query engine {engine!r} not mapped (tokenward never evaluates code)")
            continue
        rule = _rule(item.get("rule"), f"{where}.{i}", notes)
        if rule is not None:
            out.append({"query_engine": "jp", "query": item.get("query", ""), "rule": rule})
    return out


def _plugin(p: dict[str, Any], i: int, notes: list[str]) -> dict[str, Any] | None:
    kind = p.get("type")
    where = f"eas.plugins.{i} ({kind})"
    out: dict[str, Any]
    if kind == "noop":
        out = {"type": "noop"}
    elif kind == "htpasswd":
        out = {"type": "htpasswd", "htpasswd": p.get("htpasswd", "")}
    elif kind == "forward":
        out = {"type": "forward", "url": p.get("url", "")}
        if p.get("allow_insecure"):
            notes.append(f"{where}: allow_insecure dropped (TLS is always verified)")
    elif kind == "jwt":
        config = p.get("config") or {}
        secret = str(config.get("secret", ""))
        options = config.get("options") or {}
        pem = secret.lstrip().startswith("-----BEGIN")
        algs = options.get("algorithms") or (["RS256"] if pem else ["HS256"])
        out = {"type": "jwt", "algorithms": algs, ("public_key" if pem else "secret"): secret}
        for name in ("issuer", "audience"):
            if isinstance(options.get(name), str):
                out[name] = options[name]
        if p.get("assertions"):
            notes.append(f"{where}: assertions need review (eas userinfo/id_token queries differ)")
    elif kind == "ldap":
        out = _ldap(p, where, notes)
    else:
        hint = "the tokenward oidc plugin (docs/oidc.md)" if kind in ("oidc", "oauth2") else "a tokenward plugin"
        notes.append(f"{where}: plugin type {kind!r} is not supported; use {hint} or forward")
        return None
    if isinstance(p.get("realm"), str):
        out["realm"] = p["realm"]
    pcb = p.get("pcb") or {}
    mapped = {k: _assertions(pcb.get(k), f"{where}.pcb.{k}", notes) for k in ("skip", "stop") if pcb.get(k)}
    if mapped:
        out["pcb"] = mapped
    return out


def _ldap(p: dict[str, Any], where: str, notes: list[str]) -> dict[str, Any]:
    """eas's ``ldap`` (node-ldapauth-fork options in ``connection``) as tokenward's ``ldap`` plugin."""
    conn = p.get("connection") or {}
    out: dict[str, Any] = {"type": "ldap", "url": conn.get("url", ""), "user_base_dn": conn.get("searchBase", "")}
    for theirs, ours in (
        ("bindDN", "bind_dn"),
        ("bindCredentials", "bind_password"),
        ("groupSearchBase", "group_base_dn"),
    ):
        if isinstance(conn.get(theirs), str):
            out[ours] = conn[theirs]
    # ldapauth-fork writes {{username}} and {{dn}}; tokenward {username} and {dn} (escaped the same way).
    for theirs, ours in (("searchFilter", "user_filter"), ("groupSearchFilter", "group_filter")):
        if isinstance(conn.get(theirs), str):
            out[ours] = conn[theirs].replace("{{username}}", "{username}").replace("{{dn}}", "{dn}")
    if conn.get("starttls") is True:
        out["start_tls"] = True
    ttl = p.get("session_cache_ttl")
    if isinstance(ttl, int) and not isinstance(ttl, bool) and ttl >= 0:
        out["cache_seconds"] = min(ttl, 3600)
    if conn.get("tlsOptions"):
        notes.append(f"{where}: connection.tlsOptions not mapped; give ca_file (a PEM file of the directory's CA)")
    if p.get("assertions"):
        notes.append(f"{where}: assertions need review (tokenward's userinfo has sub, email, groups, name, dn)")
    return out


def _refusal(plugin: dict[str, Any]) -> str | None:
    """Why tokenward will not run this converted plugin, or None. Never quotes a secret."""
    secret = plugin.get("secret")
    if plugin["type"] == "jwt" and isinstance(secret, str) and len(secret) < MIN_JWT_SECRET:
        return (
            f"its HS secret is {len(secret)} characters and tokenward needs at least {MIN_JWT_SECRET} (a short "
            "HMAC key can be guessed offline from one token); re-key the issuer with a longer secret, or verify "
            "with its public_key or jwks_url, then add the plugin with `tokenward config-token create`"
        )
    try:
        parse_document({"tokenward": {"plugins": [plugin]}})
    except BadRequest as exc:
        return exc.detail.replace("config token field tokenward.plugins.0.", "", 1)
    return None


def convert(payload: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``(tokenward document, notes)``: notes name every plugin and option not carried over.

    Each plugin is checked on its own: one that tokenward would refuse (a jwt secret under 16
    characters, a forward URL that is not one) is left out with a note naming it and why, and the
    others are imported. 400 ``eas_unmappable`` when no plugin is left.
    """
    eas = payload["eas"]
    notes: list[str] = []
    if isinstance(eas.get("config_token_store_id"), str) and isinstance(eas.get("config_token_id"), str):
        pointer = {"config_token_store_id": eas["config_token_store_id"], "config_token_id": eas["config_token_id"]}
        return {"tokenward": pointer}, [f"eas.{k}: not mapped" for k in sorted(set(eas) - set(pointer))]
    plugins = []
    for i, p in enumerate(eas.get("plugins") or []):
        if not isinstance(p, dict):
            notes.append(f"eas.plugins.{i}: not an object")
            continue
        mapped = _plugin(p, i, notes)
        if mapped is None:
            continue
        refusal = _refusal(mapped)
        if refusal is not None:  # this plugin stays behind; the others are still imported
            notes.append(f"eas.plugins.{i} ({mapped['type']}): {refusal}")
            continue
        plugins.append(mapped)
    for key in sorted(set(eas) - {"plugins"}):
        notes.append(f"eas.{key}: not mapped")
    doc: dict[str, Any] = {"tokenward": {"plugins": plugins}}
    for claim in ("aud", "jti", "exp"):
        if claim in payload:
            doc[claim] = payload[claim]
    if not plugins:
        raise BadRequest(
            "no plugin of this eas token can be carried over: " + "; ".join(notes), code=ErrorCode.EAS_UNMAPPABLE
        )
    return doc, notes
