"""Keeping credentials out of reprs, logs and exception texts."""

from __future__ import annotations

from collections.abc import Iterable

MASK = "***"


class Secret(str):
    """A credential: behaves as the string for SDKs, shows as *** everywhere else."""

    def __new__(cls, value: str) -> "Secret":
        # Wrapping a Secret again must keep the real value, not its mask.
        raw = value.value if isinstance(value, Secret) else value
        return super().__new__(cls, raw)

    def __repr__(self) -> str:
        return f"Secret({MASK})"

    def __str__(self) -> str:  # f-strings and logging call __format__/__str__
        return MASK

    def __format__(self, spec: str) -> str:
        return MASK

    @property
    def value(self) -> str:
        """The real string, for handing to an SDK and nowhere else."""
        return str.__str__(self)


def scrub(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every non-empty secret (and its real value) replaced by ***."""
    for secret in secrets:
        if not secret:
            continue
        raw = secret.value if isinstance(secret, Secret) else secret
        if len(raw) >= 4:
            text = text.replace(raw, MASK)
    return text
