"""Exponential backoff with full jitter, shared by the consumer policy and delivery retries."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True)
class Backoff:
    base_s: float = 0.2
    max_s: float = 10.0
    factor: float = 2.0

    def ceiling(self, attempt: int) -> float:
        """Upper bound of the wait after failed attempt number `attempt` (1-based)."""
        return min(self.max_s, self.base_s * self.factor ** (attempt - 1))

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        # Half fixed, half random: spreads retries out without ever waiting (almost) nothing.
        ceiling = self.ceiling(attempt)
        return ceiling / 2 + (rng or random).uniform(0, ceiling / 2)
