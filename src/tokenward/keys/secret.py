"""A wrapper that keeps secret bytes out of reprs, logs and tracebacks."""

from __future__ import annotations

import hmac

__all__ = ["Secret"]


class Secret:
    """Secret bytes whose ``repr``/``str`` are masked. Compare with :meth:`equals` (constant time)."""

    __slots__ = ("_value",)

    def __init__(self, value: bytes) -> None:
        self._value = bytes(value)

    def reveal(self) -> bytes:
        """The secret bytes; call only where they are used, never to log."""
        return self._value

    def equals(self, other: Secret | bytes) -> bool:
        other_value = other._value if isinstance(other, Secret) else other
        return hmac.compare_digest(self._value, other_value)

    def __repr__(self) -> str:
        return "Secret('**********')"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Secret | bytes):
            return self.equals(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(("Secret", len(self._value)))

    def __reduce__(self) -> tuple[object, ...]:
        raise TypeError("Secret values cannot be pickled")
