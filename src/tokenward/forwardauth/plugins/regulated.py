"""Brute-force regulation for the password plugins (``htpasswd``, ``ldap``), as for app tokens.

The hard key — the client address, or the (user name, no address) pair without one — is banned after
``max_failures`` failures (429 ``too_many_attempts`` with ``Retry-After``); the user name alone is
a soft key: past its limit, *failed* checks for it answer late, its owner's right password does not
(no stranger can lock an account out). docs/regulation.md has the trade-off.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from tokenward.apptokens.regulation import Regulator, hard_keys, user_key
from tokenward.errors import TooManyRequests
from tokenward.forwardauth.plugins.base import Outcome

__all__ = ["PasswordRegulation"]

log = logging.getLogger("tokenward.forwardauth")


class PasswordRegulation:
    """Refuse banned (user, address) checks and record failed ones; ``regulator=None`` regulates nothing."""

    def __init__(
        self,
        regulator: Regulator | None,
        clock: Callable[[], float],
        *,
        account_delay: float = 1.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.regulator = regulator
        self.clock = clock
        self.account_delay = account_delay
        self.sleep = sleep

    @staticmethod
    def _keys(user: str, client_ip: str | None) -> tuple[str, ...]:
        return hard_keys(user, client_ip)

    async def refused(self, user: str, client_ip: str | None) -> Outcome | None:
        """The 429 answer when the address (with none: the (user, no address) pair) is banned, else ``None``."""
        regulator = self.regulator
        if regulator is None:
            return None
        now = self.clock()
        try:
            await regulator.enforce(self._keys(user, client_ip), now)
        except TooManyRequests as exc:
            return Outcome.refused(exc)
        return None

    async def failed(self, user: str, client_ip: str | None) -> None:
        """Count a wrong password; answer late while the user name is over its soft limit."""
        regulator = self.regulator
        if regulator is None:
            return
        now = self.clock()
        soft = user_key(user)
        regulator.failure(self._keys(user, client_ip), now, soft=(soft,))
        if regulator.banned(soft, now):
            await self.sleep(self.account_delay)
