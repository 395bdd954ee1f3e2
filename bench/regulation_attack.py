"""The lockout attacks of issue 15 (#1, #3) against regulation before and after, in one run.

Drives the real :class:`~tokenward.apptokens.regulation.Regulator` on an in-memory store with a
simulated clock (ten minutes of attack take milliseconds) under two key schemes:

- **before** — every key hard: the account and the client address (the scheme until issue 15);
- **after** — hard keys for the address and the (account, address) pair, the account a soft key:
  app-token failures of an account over its soft limit answer late; captcha answers for an
  account over its soft limit are refused only to browsers without that account's device cookie;
  captcha *requests* are not counted per account at all.

For each scenario it prints the victim's successes and how many of the attacker's guesses were
evaluated (not refused): regulation must let the victim through *and* keep the attacker limited.

    .venv/bin/python bench/regulation_attack.py
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from tokenward.apptokens.regulation import RegulationPolicy, Regulator, hard_keys, ip_key, user_key
from tokenward.errors import TooManyRequests
from tokenward.identity.captcha_checks import hard_keys as captcha_hard_keys
from tokenward.storage import InMemoryRegulationStore

MINUTE = 60.0
VICTIM_IP = "192.0.2.10"
ATTACKER_IP = "203.0.113.66"


@dataclass
class Tally:
    victim_ok: int = 0
    victim_tries: int = 0
    attacker_evaluated: int = 0
    attacker_tries: int = 0
    attacker_delayed: int = 0


Keys = Callable[[str, str | None, bool], tuple[tuple[str, ...], tuple[str, ...]]]
"""(account, ip, has_device) -> (keys checked, soft keys recorded beside the hard ones)."""


def app_tokens_before(account: str, ip: str | None, device: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return (user_key(account), ip_key(ip or "-")), ()


def app_tokens_after(account: str, ip: str | None, device: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
    return hard_keys(account, ip), (user_key(account),)


def captcha_before(kind: str) -> Keys:
    def keys(account: str, ip: str | None, device: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
        return (user_key(f"{kind}:{account}"), ip_key(f"{kind}:{ip}")), ()

    return keys


def captcha_after(kind: str, *, account_limited: bool) -> Keys:
    def keys(account: str, ip: str | None, device: bool) -> tuple[tuple[str, ...], tuple[str, ...]]:
        hard = captcha_hard_keys(kind, account, ip)
        if not account_limited:
            return hard, ()
        soft = (user_key(f"{kind}:{account}"),)
        return (hard if device else hard + soft), soft

    return keys


async def attempt(regulator: Regulator, keys: Keys, account: str, ip: str, now: float, *, device: bool) -> bool:
    checked, _ = keys(account, ip, device)
    try:
        regulator.check(checked, now)
    except TooManyRequests:
        return False
    return True


async def failure(regulator: Regulator, keys: Keys, account: str, ip: str, now: float) -> list[str]:
    checked, soft = keys(account, ip, False)
    hard = tuple(k for k in checked if k not in soft)
    return regulator.failure(hard, now, soft=soft)


async def app_token_attack(keys: Keys, policy: RegulationPolicy, *, distributed: bool) -> Tally:
    """Finding 3: wrong tokens for the victim's user name (3 at once, then 2 a minute, for 10 minutes; distributed:
    one every 6 s, each from a new address); the victim uses her right token once a minute from her own address."""
    regulator = Regulator(InMemoryRegulationStore(), policy, sync_seconds=1e9)
    tally = Tally()
    guesses = [0.0, 1.0, 2.0] + [MINUTE * m + s for m in range(10) for s in (10.0, 40.0)]
    if distributed:
        guesses = [6.0 * i for i in range(100)]
    victim = [MINUTE * m + 30.0 for m in range(10)]
    events = sorted([(t, "a", i) for i, t in enumerate(guesses)] + [(t, "v", i) for i, t in enumerate(victim)])
    for now, who, i in events:
        if who == "v":
            tally.victim_tries += 1
            tally.victim_ok += await attempt(regulator, keys, "alice@example.com", VICTIM_IP, now, device=False)
            continue
        ip = f"198.51.{i // 250}.{i % 250}" if distributed else ATTACKER_IP
        tally.attacker_tries += 1
        if await attempt(regulator, keys, "alice@example.com", ip, now, device=False):
            tally.attacker_evaluated += 1
            await failure(regulator, keys, "alice@example.com", ip, now)
            _, soft = keys("alice@example.com", ip, False)
            if soft and regulator.banned(soft[0], now):
                tally.attacker_delayed += 1
    return tally


async def captcha_request_attack(keys: Keys, policy: RegulationPolicy) -> Tally:
    """Finding 1: 20 captcha requests for the victim's address at once, then 2 a minute; the victim asks once a
    minute. Requests are counted, then checked (the first one over the limit is refused)."""
    regulator = Regulator(InMemoryRegulationStore(), policy, sync_seconds=1e9)
    tally = Tally()
    asks = [float(s) for s in range(21)] + [MINUTE * m + s for m in range(1, 10) for s in (10.0, 40.0)]
    victim = [MINUTE * m + 30.0 for m in range(10)]
    events = sorted([(t, "a") for t in asks] + [(t, "v") for t in victim])
    for now, who in events:
        ip = VICTIM_IP if who == "v" else ATTACKER_IP
        checked, _ = keys("alice@example.com", ip, False)
        regulator.failure(checked, now)  # count first, then check: the first request past the limit is refused
        ok = await attempt(regulator, keys, "alice@example.com", ip, now, device=False)
        if who == "v":
            tally.victim_tries += 1
            tally.victim_ok += ok
        else:
            tally.attacker_tries += 1
            tally.attacker_evaluated += ok
    return tally


async def captcha_answer_attack(keys: Keys, policy: RegulationPolicy, *, device: bool) -> Tally:
    """A distributed guesser: one wrong captcha answer from each of 300 addresses over 10 minutes; the victim signs
    in once a minute from her usual browser (``device``: it holds her device cookie)."""
    regulator = Regulator(InMemoryRegulationStore(), policy, sync_seconds=1e9)
    tally = Tally()
    guesses = [i * 2.0 for i in range(300)]
    victim = [MINUTE * m + 31.0 for m in range(10)]
    events = sorted([(t, "a", i) for i, t in enumerate(guesses)] + [(t, "v", i) for i, t in enumerate(victim)])
    for now, who, i in events:
        if who == "v":
            tally.victim_tries += 1
            tally.victim_ok += await attempt(regulator, keys, "carol@example.com", VICTIM_IP, now, device=device)
            continue
        ip = f"198.51.{i // 250}.{i % 250}"
        tally.attacker_tries += 1
        if await attempt(regulator, keys, "carol@example.com", ip, now, device=False):
            tally.attacker_evaluated += 1
            await failure(regulator, keys, "carol@example.com", ip, now)
    return tally


def row(name: str, before: Tally, after: Tally) -> str:
    def cell(t: Tally) -> str:
        delayed = f", {t.attacker_delayed} late" if t.attacker_delayed else ""
        return (
            f"victim {t.victim_ok}/{t.victim_tries}, "
            f"attacker guesses evaluated {t.attacker_evaluated}/{t.attacker_tries}{delayed}"
        )

    return f"| {name} | {cell(before)} | {cell(after)} |"


async def main() -> None:
    app = RegulationPolicy(max_failures=3, find_time=120.0, ban_time=300.0)
    app_after = RegulationPolicy(max_failures=3, find_time=120.0, ban_time=300.0, soft_max_failures=10)
    requests = RegulationPolicy(max_failures=21, find_time=600.0, ban_time=600.0)  # TOKENWARD_CAPTCHA_MAX_REQUESTS + 1
    answers = RegulationPolicy(max_failures=10, find_time=600.0, ban_time=600.0)
    answers_after = RegulationPolicy(max_failures=10, find_time=600.0, ban_time=600.0, soft_max_failures=30)
    print("| scenario (10 simulated minutes) | before | after |")
    print("|---|---|---|")
    print(
        row(
            "#3 app tokens: one address, 3 wrong then 2/min",
            await app_token_attack(app_tokens_before, app, distributed=False),
            await app_token_attack(app_tokens_after, app_after, distributed=False),
        )
    )
    print(
        row(
            "#3 app tokens: a guess every 6 s, each from a new address",
            await app_token_attack(app_tokens_before, app, distributed=True),
            await app_token_attack(app_tokens_after, app_after, distributed=True),
        )
    )
    print(
        row(
            "#1 captcha requests: 20 at once then 2/min",
            await captcha_request_attack(captcha_before("captcha-request"), requests),
            await captcha_request_attack(captcha_after("captcha-request", account_limited=False), requests),
        )
    )
    for device in (True, False):
        print(
            row(
                f"captcha answers, 300 addresses; victim {'with' if device else 'without'} device cookie",
                await captcha_answer_attack(captcha_before("captcha"), answers, device=device),
                await captcha_answer_attack(
                    captcha_after("captcha", account_limited=True), answers_after, device=device
                ),
            )
        )


if __name__ == "__main__":
    asyncio.run(main())
