"""Commented sample policy files, as ``tokenward policy samples`` writes them (docs/policies.md).

Every row is commented out, so a fresh install allows nothing until someone uncomments rows.
``mytoken.server`` is replaced by the deployment's server name when one is given.
"""

from __future__ import annotations

import os
from pathlib import Path

from tokenward.errorcodes import ErrorCode
from tokenward.errors import PolicyError
from tokenward.policy.model import DEFAULT_MODEL

__all__ = ["SAMPLES", "sample_files", "write_samples"]

_HEADER = """\
# tokenward policy file. Rows: p, sub, dom, obj, act — see docs/policies.md.
# Patterns: dialect "glob" (default) treats * and /* as wildcards, dots literally, and e-mails
# and hashes case-insensitively; dialect "compat" treats each pattern as an unanchored regex,
# exactly like the original HexaEight server. Run `tokenward policy lint` after editing.
"""

_MODEL_HEADER = """\
# tokenward model: do not change unless you know Casbin well. Another shape still works,
# evaluated by pycasbin on the slow path (a warning says so at start-up).
"""

SAMPLES: dict[str, str] = {
    "userpolicy.csv": """\
# User Policy Configuration
# Note: Any Email account is treated as a user.
# This policy defines who is allowed to login (login), request asymmetric shared key (ask) and get
# information about others (poke)

# ---------------User To TokenServer Policy--------------------------
# The below policy allows any email user  to login to Client
# Application and fetch a Client Token a.k.a asymmetric shared key
# as well as fetch information about the token server.
# -------------------------------------------------------------------
#  EMAILUSER  | AUTHSERVER    | CLIENTAPP | PERMISSION
# -------------------------------------------------------------------
# p, /*@/*./*, mytoken.server, CLIENTID-A, login
# p, /*@/*./*, mytoken.server, CLIENTID-A, ask
# p, /*@/*./*, mytoken.server, CLIENTID-A, poke
# -------------------------------------------------------------------
# p, /*@/*./*, mytoken.server, CLIENTID-B, login
# p, /*@/*./*, mytoken.server, CLIENTID-B, ask
# p, /*@/*./*, mytoken.server, CLIENTID-B, poke
# -------------------------------------------------------------------


# ---------------User To User Policy--------------------------------
# The below policy allows any email address to request a Client Token
# a.k.a asymmetric shared key for any other email address in every
# Client Application.
# -------------------------------------------------------------------
#  SRC-EMAILUSER | DEST-EMAILUSER | CLIENTAPP | PERMISSION
# -------------------------------------------------------------------
# p, /*@/*./*,          /*@/*./*,      CLIENTID-A, ask
# p, /*@/*./*,          /*@/*./*,      CLIENTID-A, poke
# -------------------------------------------------------------------
# p, /*@/*./*,          /*@/*./*,     CLIENTID-B, ask
# p, /*@/*./*,          /*@/*./*,     CLIENTID-B, poke
# -------------------------------------------------------------------


# ---------------User To Resource Policy----------------------------
# The below policy allows any email address to request Client Tokens
# to communicate with  other resource servers
# in every  Client Application.
# -------------------------------------------------------------------
#  SRC-EMAILUSER | DEST-RESOURCE | CLIENTAPP | PERMISSION
# -------------------------------------------------------------------
# p, /*@/*./*, myresource.server, CLIENTID-A, ask
# p, /*@/*./*, myresource.server, CLIENTID-A, poke
# p, /*@/*./*, myresource.server, CLIENTID-B, ask
# p, /*@/*./*, myresource.server, CLIENTID-B, poke


# The below policy has a explicit deny to block access to specific email user or email domains for
# this realm (Client ID)
# ---------------Global Deny Policy----------------------------------
# The below policy has a explicit deny to block access for a specific
# Email to another destination Email address or Resource per Client ID
# -------------------------------------------------------------------
#  SRC-EMAILUSER |    DEST-USER/RESOURCE | CLIENTAPP | PERMISSION
# -------------------------------------------------------------------
# p,hack@jack.email, mytoken.server,         CLIENTID-A, deny
# p,/*@tempr.email, mytoken.server,         CLIENTID-A, deny
# p,someone@gmail.com, personal@yahoo.com,  CLIENTID-B, deny
# p,someone@gmail.com, confidential.resource.com, CLIENTID-B, deny

# ---------------tokenward administrators---------------------------
# A subject granted 'admin' on the server's own realm (TOKENWARD) may use the admin API.
# -------------------------------------------------------------------
# p, alice@example.com, mytoken.server, TOKENWARD, admin
""",
    "resourcepolicy.csv": """\
# Resource Policy Configuration

# Any Non Email account is treated as a Resource
# This policy has a two part definition, one set of policies defines, which resources can login to the
# token server
# The second set of policies define, which users can access to the resource server by requesting
# asymmetric shared key

# ---------------Resource To TokenServer Policy--------------------------
# The below policy allows specific Resource Servrs to login to Client
# Application and fetch a Client Token a.k.a asymmetric shared key
# as well as fetch information about the token server.
# -------------------------------------------------------------------
#     SRC-RESOURCE |    AUTHSERVER | CLIENTAPP | PERMISSION
# -------------------------------------------------------------------
# p, myresource.server, mytoken.server, CLIENTID-A, login
# p, myresource.server, mytoken.server, CLIENTID-A, ask
# p, myresource.server, mytoken.server, CLIENTID-A, poke
# -------------------------------------------------------------------
# p, myresource.server, mytoken.server, CLIENTID-B, login
# p, myresource.server, mytoken.server, CLIENTID-B, ask
# p, myresource.server, mytoken.server, CLIENTID-B, poke


# ---------------Resource To User Policy-----------------------------
# -------------------------------------------------------------------
#   SRC-RESOURCE |  DEST-EMAILUSER | CLIENTAPP | PERMISSION
# -------------------------------------------------------------------
# p, myresource.server, /*@/*./*,   CLIENTID-A,   ask
# p, myresource.server, /*@/*./*,   CLIENTID-A,   poke
# -------------------------------------------------------------------
# p, myresource.server, /*@/*./*,   CLIENTID-B,   ask
# p, myresource.server, /*@/*./*,   CLIENTID-B,   poke


# ---------------System Authentication Policy------------------------
# -------------------------------------------------------------------
#   EMAILUSER |  DEST-HOST | AUTHSERVER | PERMISSION
# -------------------------------------------------------------------
# p, /*@/*./*, myunix.server, mytoken.server, systemlogin
# p, /*@/*./*, myraspbpi.server, mytoken.server, systemlogin
# -------------------------------------------------------------------
""",
    "captchapolicy.csv": """\
# Captcha Sample Policy File

# -----------------------------------------------------
# Allow Any Email Address to request for a Captcha
# Denying a captcha for a user might result in the user 
# not being able to complete the login process.
# -----------------------------------------------------
# -------------------------------------------------------------------
#   EMAILUSER | AUTHSERVER | REQUEST | PERMISSION
# -------------------------------------------------------------------
# p, /*@/*./*, mytoken.server, CAPTCHA, enable

# -----------------------------------------------------
# Example of Denying access to specific email address
# -----------------------------------------------------
# -------------------------------------------------------------------
#   EMAILUSER | AUTHSERVER | REQUEST | PERMISSION
# -------------------------------------------------------------------

# p,/*@tempr.email, mytoken.server, CAPTCHA, deny
""",
    "clientappspolicy.csv": """\
# Client Apps Policy File
# -------------------------------------------------------------------
# This policy file defines which user agent or client app is allowed 
# to request keys from the token server for a particular client ID
# This enforcement is already done by HexaEight Platform during user authentication.
# However this additional policy enforcement at the token server 
# is provided as a second level of enforcement for additional protection.
# During App Development, it is best to not set this enforcement and 
# enable this enforcement in UAT and Production environments.
# -------------------------------------------------------------------
#    CLIENTSHA512HASH      | AUTHSERVER | CLIENTAPP | PERMISSION
# -------------------------------------------------------------------

# p, website.host.sha512hash, mytoken.server, CLIENTID, clientaccess
# p, desktopapp.sha512hash, mytoken.server, CLIENTID, clientaccess
# p, mobileapp.sha512hash, mytoken.server, CLIENTID, clientaccess
# p, scriptapp.sha512hash, mytoken.server, CLIENTID, clientaccess
""",
    "clientscopespolicy.csv": """\
# Client Scopes Policy File

# This policy file defines the Scopes that any email user is allowed to request while login using the
# Client Application.
# If no scope is requested the DEFAULT scopes is assigned to the Client Application.

# Any Scopes defined here can be used while implementing distributed authorization on the Resource
# Server by creating a Role similar to the SCOPES
# and granting the role access to the user on the Resource Server
# -------------------------------------------------------------------
#    EMAILUSER | CLIENTSHA512HASH | CLIENTAPP | SCOPE(s)/ROLE
# -------------------------------------------------------------------

# p, /*@*./*, website.host.sha512hash, CLIENTID, DEFAULT
# p, /*@*./*, website.host.sha512hash, CLIENTID, WEBUSER
# p, /*@*./*, website.host.sha512hash, CLIENTID, ADMIN

# p, /*@*./*, mobileapp.sha512hash, CLIENTID, DEFAULT
# p, /*@*./*, mobileapp.host.sha512hash, CLIENTID, MOBILEUSER
# p, /*@*./*, mobileapp.host.sha512hash, CLIENTID, ADMIN

# p, /*@*./*, desktop.sha512hash, CLIENTID, DEFAULT
# p, /*@*./*, desktop.host.sha512hash, CLIENTID, DESKTOPUSER
# p, /*@*./*, desktop.host.sha512hash, CLIENTID, ADMIN
""",
}


def sample_files(server_name: str | None = None) -> dict[str, str]:
    """All seven sample files, by name, with ``mytoken.server`` replaced by ``server_name``."""
    files = {"model.conf": _MODEL_HEADER + DEFAULT_MODEL, "captchamodel.conf": _MODEL_HEADER + DEFAULT_MODEL}
    for name, text in SAMPLES.items():
        body = text.replace("mytoken.server", server_name) if server_name else text
        files[name] = _HEADER + "\n" + body
    return files


def write_samples(directory: Path, *, server_name: str | None = None, overwrite: bool = False) -> list[Path]:
    """Write the sample files into ``directory`` (mode 0600); existing files are kept unless ``overwrite``.

    Returns the paths written. Raises ``policy_file_unreadable`` if the directory is unusable.
    """
    written: list[Path] = []
    try:
        directory.mkdir(parents=True, exist_ok=True)
        for name, text in sample_files(server_name).items():
            path = directory / name
            if path.exists() and not overwrite:
                continue
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                handle.write(text)
            written.append(path)
    except OSError as exc:
        raise PolicyError(
            f"cannot write samples to {directory}: {exc.strerror}", code=ErrorCode.POLICY_FILE_UNREADABLE
        ) from None
    return written
