"""Rates with their uncertainty: a count, a share and its 95% Wilson score interval.

Wilson rather than the normal approximation because the shares that matter sit near 0 or 1 and the
counts are small: 24 of 25 approved is 96%, but the interval runs from 80% to 99%, so it does not
show a 90% approval rate.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

Z95 = 1.959963984540054  # two-sided 95%


@dataclass(frozen=True)
class Rate:
    """`k` of `n`, with a 95% Wilson score interval."""

    k: int
    n: int

    @property
    def value(self) -> float | None:
        return self.k / self.n if self.n else None

    def _bounds(self) -> tuple[float, float] | None:
        if not self.n:
            return None
        n, p, z2 = self.n, self.k / self.n, Z95 * Z95
        centre = (p + z2 / (2 * n)) / (1 + z2 / n)
        half = Z95 * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n)) / (1 + z2 / n)
        return max(0.0, centre - half), min(1.0, centre + half)

    @property
    def low(self) -> float | None:
        b = self._bounds()
        return b[0] if b else None

    @property
    def high(self) -> float | None:
        b = self._bounds()
        return b[1] if b else None

    def text(self) -> str:
        """`96% (24 of 25; 95% Wilson 80–99%)`."""
        b = self._bounds()
        if b is None:
            return "— (0 of 0)"
        return f"{self.k / self.n:.0%} ({self.k} of {self.n}; 95% Wilson {b[0]:.0%}–{b[1]:.0%})"

    def as_dict(self) -> dict[str, float | int | None]:
        return {"k": self.k, "n": self.n, "rate": self.value, "low": self.low, "high": self.high}
