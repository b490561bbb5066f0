"""Version rules: what changes with the vLLM release, in one place.

`rules_for(version)` is the entry point for everything that depends on the release: the
memory accounting era (the documented rule sets in rentstack.plan.accounting), vLLM's
default --gpu-memory-utilization and its per-card batch defaults. `parse_version` is the
one reader of version strings in the package; the doctor reads log versions through
`known_rules`, which says None instead of refusing.
"""

from __future__ import annotations

import re
from functools import lru_cache

from rentstack.errors import RentstackError
from rentstack.plan.accounting import Rules, era_rules
from rentstack.versions import VLLM_VERSION

OLDEST = (0, 5, 0)
"""The planner does not model releases before this."""

# A release number and an optional local/pre-release tail ('+582e.nv25.11', '.post1', '.1');
# the whole string must be one (no spaces or control characters: the value reaches messages).
_VERSION = re.compile(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:[.+-][0-9A-Za-z.+-]*)?")


def parse_version(version: str) -> tuple[int, int, int]:
    """'0.11.0+582e.nv25.11' → (0, 11, 0); '0.10.1.1' → (0, 10, 1); 'v0.19' → (0, 19, 0)."""
    m = _VERSION.fullmatch(str(version))
    if not m:
        raise RentstackError(f"vllm_version {version!r} is not a release number; use X.Y.Z, e.g. 0.32.0")
    return int(m.group(1)), int(m.group(2)), int(m.group(3) or 0)


def release(version: str) -> str:
    """The release a version string names, as X.Y.Z ('0.11.0+582e' → '0.11.0')."""
    return ".".join(map(str, parse_version(version)))


V1_ON_PRE_AMPERE = (0, 10, 2)
"""0.8.0–0.10.1 start the V1 engine only on compute capability ≥ 8.0 and fall back to V0 on
older cards ("Compute Capability < 8.0 is not supported by the V1 Engine"); vLLM PRs 23614
and 24022 brought V1 to them in 0.10.2, and 0.11.0 removed V0."""


@lru_cache(maxsize=64)
def rules_for(version: str, pre_ampere: bool = False) -> Rules:
    """The rules of this vLLM release on this kind of card (pre_ampere: compute capability
    below 8.0, see plan.cards); refuses what is not a release number or predates OLDEST."""
    v = parse_version(version)
    if v < OLDEST:
        raise RentstackError(f"vllm_version {version} is older than 0.5, which the planner does not model; use ≥0.6")
    return era_rules(v, v0_engine=pre_ampere and v < V1_ON_PRE_AMPERE)


def known_rules(version: str | None) -> Rules | None:
    """rules_for, or None when the version is missing, unreadable or too old (a log may not say)."""
    if not version:
        return None
    try:
        return rules_for(str(version))
    except RentstackError:
        return None


def rules_for_log(version: str | None) -> Rules:
    """The rules of a version read from a log; the pinned release's when the log does not say
    or says something the planner does not model."""
    return known_rules(version) or rules_for(VLLM_VERSION)


__all__ = ["OLDEST", "V1_ON_PRE_AMPERE", "Rules", "known_rules", "parse_version", "release", "rules_for", "rules_for_log"]
