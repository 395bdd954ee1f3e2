"""The identity policy adapter over the real engine names the deny row of a refusal."""

from __future__ import annotations

from tokenward.errorcodes import ErrorCode
from tokenward.errors import Forbidden
from tokenward.identity.policy import Decision, PolicyQuestions
from tokenward.policy import build_policy

CLIENT = "C" * 40
USER = (
    f"p, *@example.com, api.example.com, {CLIENT}, ask\n"
    f"p, *@example.com, *@example.com, {CLIENT}, poke\n"
    f"p, carol@example.com, api.example.com, {CLIENT}, deny\n"
    f"p, carol@example.com, bob@example.com, {CLIENT}, deny\n"
).encode()


def _questions() -> PolicyQuestions:
    policy = build_policy({"userpolicy.csv": USER})
    return PolicyQuestions(lambda: policy, "auth.example.com")


def test_allowed_ask_is_a_plain_allow() -> None:
    assert _questions().can_ask("alice@example.com", "api.example.com", CLIENT) == Decision(True)


def test_denied_ask_names_the_deny_row_by_file_and_line() -> None:
    assert _questions().can_ask("carol@example.com", "api.example.com", CLIENT) == Decision(False, "userpolicy.csv:3")


def test_ask_with_no_allowing_row_names_no_rule() -> None:
    assert _questions().can_ask("alice@example.com", "db.example.com", CLIENT) == Decision(False)


def test_denied_poke_names_the_deny_row() -> None:
    questions = _questions()
    assert questions.can_poke("carol@example.com", "bob@example.com", CLIENT) == Decision(False, "userpolicy.csv:4")
    assert questions.can_poke("alice@example.com", "bob@example.com", CLIENT) == Decision(True)


def test_error_fields_join_the_json_body() -> None:
    error = Forbidden("no", code=ErrorCode.ASK_DENIED_BY_RULE, fields={"rule": "userpolicy.csv:3"})
    assert error.to_dict() == {"rule": "userpolicy.csv:3", "error": "ask_denied_by_rule", "detail": "no"}
    assert Forbidden("no").to_dict() == {"error": "forbidden", "detail": "no"}
