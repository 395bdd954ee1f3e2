"""The ``pam_python.so`` module (Debian's libpam-python): the PAM conversation with a captcha and a QR code.

``auth required /lib/security/pam_python.so <lib>/pam_tokenward.py [config=FILE] [mode=conversation|password]``.
``mode=conversation`` (default) asks the server for a captcha, shows its QR code and text as
``PAM_TEXT_INFO`` and prompts for the code (echo on: the code is one-time). ``mode=password``
takes the password PAM already has (or prompts for it) as a code made by the user beforehand,
like the pam_exec helper. pam_python hands us its ``pamh`` object; its constants are the PAM
return codes.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .config import DEFAULT_CONFIG, ConfigProblem, load_config
from .flow import GRANTED, REFUSED, UNAVAILABLE, UNKNOWN_USER, Outcome, conversation_login, log_line, password_login
from .qr import terminal_qr

__all__ = ["pam_sm_authenticate", "pam_sm_setcred"]


def _option(argv: Sequence[str], name: str, default: str) -> str:
    for arg in argv[1:]:  # argv[0] is the module's path
        if arg.startswith(name + "="):
            return arg.split("=", 1)[1]
    return default


def _status(pamh: Any, outcome: Outcome) -> int:
    codes = {
        GRANTED: pamh.PAM_SUCCESS,
        REFUSED: pamh.PAM_AUTH_ERR,
        UNKNOWN_USER: pamh.PAM_USER_UNKNOWN,
        UNAVAILABLE: pamh.PAM_AUTHINFO_UNAVAIL,
    }
    return int(codes.get(outcome.result, pamh.PAM_AUTH_ERR))


def _prompt(pamh: Any, text: str, lines: list[str], *, echo: bool = True) -> str | None:
    style = pamh.PAM_PROMPT_ECHO_ON if echo else pamh.PAM_PROMPT_ECHO_OFF
    try:
        pamh.conversation(pamh.Message(pamh.PAM_TEXT_INFO, "\n".join(lines)))
        answer = pamh.conversation(pamh.Message(style, text))
    except pamh.exception:
        return None
    return None if answer.resp is None else str(answer.resp)


def pam_sm_authenticate(pamh: Any, flags: int, argv: Sequence[str]) -> int:
    try:
        user = str(pamh.get_user(None) or "")
    except pamh.exception:
        return int(pamh.PAM_USER_UNKNOWN)
    remote = str(pamh.rhost) if pamh.rhost else None
    try:
        config = load_config(_option(argv, "config", DEFAULT_CONFIG))
    except ConfigProblem as exc:
        log_line(None, user, None, Outcome(UNAVAILABLE, f"configuration: {exc}"), remote)
        return int(pamh.PAM_AUTHINFO_UNAVAIL)
    if _option(argv, "mode", "conversation") == "password":
        code = pamh.authtok
        if code is None:
            lines = [f"tokenward: the code your authenticator made for {config.host}."]
            code = _prompt(pamh, "Code: ", lines, echo=False)
        return _status(pamh, password_login(config, user, str(code or ""), remote))
    outcome = conversation_login(config, user, remote, lambda text, lines: _prompt(pamh, text, lines), terminal_qr)
    _tell(pamh, outcome)
    return _status(pamh, outcome)


#: What the person at the terminal is told; the reason stays in the auth log (no policy is revealed).
_TOLD = {
    REFUSED: "tokenward: the code was not accepted.",
    UNAVAILABLE: "tokenward: the token server could not be asked; try again later or use another way in.",
}


def _tell(pamh: Any, outcome: Outcome) -> None:
    text = _TOLD.get(outcome.result)
    if text is None:
        return
    try:
        pamh.conversation(pamh.Message(pamh.PAM_ERROR_MSG, text))
    except pamh.exception:
        pass


def pam_sm_setcred(pamh: Any, flags: int, argv: Sequence[str]) -> int:
    return int(pamh.PAM_SUCCESS)
