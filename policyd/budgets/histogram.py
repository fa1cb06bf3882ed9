"""Log-scale histograms of output tokens, and their quantiles: what ``reserve: {estimate:
p95}`` learns from.

One fixed bucket layout, shared by every store and instance, so histograms from
anywhere add up field by field. Bucket 0 holds 0 tokens; above that a bucket spans a
factor of 2**(1/4) (about 19 %), aligned to whole tokens, so that small counts are exact
(1 to 16 tokens each have their own bucket). Everything up to the largest output a
policy can describe (``MAX_TOKENS``, 10^9) fits in :data:`BUCKETS` buckets, so a
histogram never holds more fields than that, whatever the traffic.

An estimate is the largest value of the bucket holding the quantile (nearest rank):
never below the true quantile of the recorded values, and in the same bucket, so at
most one bucket width (19 %) above it.
"""

from __future__ import annotations

import math
import re
from bisect import bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from fractions import Fraction

from policyd.errors import ConfigError
from policyd.fields import MAX_COUNT, MAX_TOKENS

STEPS_PER_DOUBLING = 4


def _lower_bounds() -> tuple[int, ...]:
    bounds = [0, 1]
    step = 0
    while bounds[-1] <= MAX_TOKENS:
        step += 1
        bounds.append(max(bounds[-1] + 1, math.ceil(2 ** (step / STEPS_PER_DOUBLING))))
    return tuple(bounds)


#: The smallest value of each bucket; the last bucket is open-ended.
LOWER: tuple[int, ...] = _lower_bounds()
BUCKETS = len(LOWER)


def bucket_of(tokens: int) -> int:
    """The bucket a count of output tokens falls in (negative counts: bucket 0)."""
    return 0 if tokens <= 0 else bisect_right(LOWER, tokens) - 1


def upper(bucket: int) -> int:
    """The largest value of a bucket: what an estimate that lands in it reserves."""
    return LOWER[bucket + 1] - 1 if bucket + 1 < BUCKETS else MAX_COUNT


_QUANTILE = re.compile(r"^p([1-9][0-9]?)(?:\.([0-9]{1,2}))?$")
QUANTILE_PATTERN = _QUANTILE.pattern


@dataclass(frozen=True, slots=True)
class Quantile:
    """A percentile as written (``p95``, ``p99.9``) and as an exact fraction."""

    text: str
    fraction: Fraction

    def rank(self, total: int) -> int:
        """Nearest rank: the position (1-based) of the quantile among ``total`` values."""
        return max(1, math.ceil(self.fraction * total))


def parse_quantile(text: str) -> Quantile:
    """``"p95"`` -> 0.95. Raises ConfigError (a ValueError) for anything but p1 .. p99.99."""
    match = _QUANTILE.match(text) if isinstance(text, str) else None
    if match is None:
        raise ConfigError(f"unknown quantile {text!r}: write p1 .. p99.99, e.g. p95")
    whole, part = match.group(1), match.group(2) or ""
    percent = Fraction(int(whole + part), 10 ** len(part))
    return Quantile(text, percent / 100)


def quantile(counts: Mapping[int, int], q: Quantile) -> int | None:
    """The estimate of quantile ``q`` of a histogram (bucket -> count); None when empty."""
    total = sum(c for c in counts.values() if c > 0)
    if total <= 0:
        return None
    rank = q.rank(total)
    seen = 0
    for bucket in sorted(counts):
        count = counts[bucket]
        if count <= 0:
            continue
        seen += count
        if seen >= rank:
            return upper(bucket)
    return upper(max(counts))  # not reached: seen ends at total >= rank
