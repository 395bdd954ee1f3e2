"""Builders for portal tests: a data dir whose policy lets the portal sign users in, and an authenticator."""

from __future__ import annotations

import re
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

from tests.helpers import init_data_dir, write_policy_files
from tokenward.cli.client import ensure_first_party_client
from tokenward.identity.captcha import open_captcha

SERVER = "auth.example.com"
ADMIN = "admin@example.com"
USER = "alice@example.com"
OUTSIDER = "mallory@example.com"


def prepare(data: Path) -> str:
    """Initialise ``data`` like ``tokenward init``, with a policy for the portal; returns its client ID."""
    init_data_dir(data, SERVER)
    client_id = ensure_first_party_client(data, SERVER).client_id
    files = {
        "captchapolicy.csv": f"p, *@example.com, {SERVER}, CAPTCHA, enable\np, {OUTSIDER}, {SERVER}, CAPTCHA, deny\n",
        "userpolicy.csv": (f"p, *@example.com, {SERVER}, {client_id}, login\np, {ADMIN}, {SERVER}, TOKENWARD, admin\n"),
        "clientscopespolicy.csv": (f"p, *@example.com, *, {client_id}, DEFAULT\np, {ADMIN}, *, {client_id}, reports\n"),
    }
    write_policy_files(data, files)
    return client_id


def code_of(page_html: str, key: X25519PrivateKey) -> str:
    """What the authenticator shows for the captcha payload on a captcha page."""
    match = re.search(r'<textarea id="payload"[^>]*>([^<]+)</textarea>', page_html)
    if match is None:
        raise AssertionError("no captcha payload on the page")
    return open_captcha(match.group(1), key).code
