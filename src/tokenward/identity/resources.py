"""Resource servers: names with an Ed25519 public key, in ``resources.json`` in the data dir.

Machine login (docs/protocol.md §8): the resource signs
``tokenward/v1/resource-login|<server>|<challenge_id>|<challenge>|<client_id>|<session_key>``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tokenward.datadir import write_private
from tokenward.errorcodes import ErrorCode
from tokenward.errors import BadRequest, ConfigError, NotFound, Unauthorized
from tokenward.identity.encoding import b64u_decode, b64u_encode

__all__ = [
    "RESOURCES_FILE",
    "ResourceRegistry",
    "load_resources",
    "login_message",
    "read_public_key",
    "save_resources",
    "verify_login_signature",
]

RESOURCES_FILE = "resources.json"
_NAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?$")


def login_message(*, server: str, challenge_id: str, challenge: str, client_id: str, session_key: str) -> bytes:
    return f"tokenward/v1/resource-login|{server}|{challenge_id}|{challenge}|{client_id}|{session_key}".encode()


def read_public_key(data: bytes) -> str:
    """An Ed25519 public key from PEM, or raw 32 bytes as base64url text → base64url."""
    text = data.strip()
    if text.startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(text)
        except ValueError:
            raise BadRequest("not a PEM public key", code=ErrorCode.RESOURCE_KEY_INVALID) from None
        if not isinstance(key, Ed25519PublicKey):
            raise BadRequest("the resource key must be Ed25519", code=ErrorCode.RESOURCE_KEY_INVALID)
        return b64u_encode(key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw))
    b64u_decode(text.decode("ascii", "replace"), field="public key", length=32, code=ErrorCode.RESOURCE_KEY_INVALID)
    return text.decode("ascii")


def verify_login_signature(public_key: str, signature: str, message: bytes) -> None:
    key = Ed25519PublicKey.from_public_bytes(b64u_decode(public_key, field="public key", length=32))
    sig = b64u_decode(signature, field="signature", length=64, code=ErrorCode.RESOURCE_SIGNATURE_INVALID)
    try:
        key.verify(sig, message)
    except InvalidSignature:
        raise Unauthorized("the resource login signature is wrong", code=ErrorCode.RESOURCE_SIGNATURE_INVALID) from None


@dataclass(frozen=True, slots=True)
class ResourceRegistry:
    keys: tuple[tuple[str, str], ...] = ()

    def get(self, name: str) -> str:
        for known, key in self.keys:
            if known == name.lower():
                return key
        raise NotFound(f"unknown resource {name[:100]!r}", code=ErrorCode.RESOURCE_UNKNOWN)

    def register(self, name: str, public_key: str) -> ResourceRegistry:
        if not _NAME.match(name) or "@" in name:
            raise BadRequest(
                "a resource name is a DNS-like name such as api.example.com", code=ErrorCode.RESOURCE_NAME_INVALID
            )
        rest = tuple(item for item in self.keys if item[0] != name.lower())
        return replace(self, keys=(*rest, (name.lower(), public_key)))

    def render(self) -> bytes:
        doc = {"version": 1, "resources": [{"name": n, "public_key": k} for n, k in self.keys]}
        return (json.dumps(doc, indent=2) + "\n").encode()

    @classmethod
    def parse(cls, data: bytes) -> ResourceRegistry:
        try:
            doc = json.loads(data)
            return cls(tuple((str(r["name"]), str(r["public_key"])) for r in doc["resources"]))
        except (ValueError, KeyError, TypeError, RecursionError) as exc:
            raise ConfigError(
                f"{RESOURCES_FILE} is damaged ({type(exc).__name__})", code=ErrorCode.RESOURCES_INVALID
            ) from None


def load_resources(data_dir: Path) -> ResourceRegistry:
    try:
        return ResourceRegistry.parse((data_dir / RESOURCES_FILE).read_bytes())
    except FileNotFoundError:
        return ResourceRegistry()


def save_resources(data_dir: Path, registry: ResourceRegistry) -> None:
    write_private(data_dir / RESOURCES_FILE, registry.render())
