"""Injected faults: the rules posted to ``/_sandbox/faults`` and the choice of which fires.

Called by the sandbox's control endpoint (to parse and replace the rules) and by its
server (to pick the fault for a request). Pure apart from the seeded random source.

Semantics (docs/architecture.md, "The sandbox"): ``path`` is an ``fnmatch`` glob over
the path without its query (``*`` also matches ``/``); ``method`` and ``path`` ``"*"``
match everything; the first live rule that matches decides. A ``count`` rule is live
while its count is above zero and counts down only when it fires; a ``probability`` rule
is always live and fires for that share of the requests it decides (when its draw says
no, nothing fires: later rules are no second chance), drawn from a source re-seeded from
``--seed`` each time the rules are replaced, so a run is reproducible.
"""

from __future__ import annotations

import fnmatch
import random
from dataclasses import dataclass
from typing import Any

KINDS = ("error_500", "rate_limit", "timeout_after_commit", "drop_connection")
DEFAULT_RETRY_AFTER = 1


class RuleError(ValueError):
    """A fault rule that cannot be used; the message says which and why."""


@dataclass
class Rule:
    method: str
    path: str
    fault: str
    count: int | None
    probability: float | None
    retry_after: int | None  # rate_limit only: None omits the header

    def matches(self, method: str, path: str) -> bool:
        return self.method in {"*", method} and fnmatch.fnmatchcase(path, self.path)

    def describe(self) -> dict[str, Any]:
        shown: dict[str, Any] = {"method": self.method, "path": self.path, "fault": self.fault}
        if self.count is not None:
            shown["count"] = self.count
        if self.probability is not None:
            shown["probability"] = self.probability
        if self.fault == "rate_limit":
            shown["retry_after"] = False if self.retry_after is None else self.retry_after
        return shown


def parse_rules(document: Any) -> list[Rule]:
    if not isinstance(document, list):
        raise RuleError("the body must be a JSON list of rules ([] clears them)")
    return [_parse_rule(index, raw) for index, raw in enumerate(document)]


def _parse_rule(index: int, raw: Any) -> Rule:
    where = f"rule {index}"
    if not isinstance(raw, dict):
        raise RuleError(f"{where}: must be an object")
    unknown = set(raw) - {"method", "path", "fault", "count", "probability", "retry_after"}
    if unknown:
        raise RuleError(f"{where}: unknown keys {sorted(unknown)}")
    method, path, fault = raw.get("method", "*"), raw.get("path", "*"), raw.get("fault")
    if not isinstance(method, str) or not isinstance(path, str):
        raise RuleError(f"{where}: method and path must be strings")
    if fault not in KINDS:
        raise RuleError(f"{where}: fault must be one of {', '.join(KINDS)}")
    count, probability = raw.get("count"), raw.get("probability")
    if (count is None) == (probability is None):
        raise RuleError(f"{where}: give exactly one of count or probability")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise RuleError(f"{where}: count must be a positive integer")
    if probability is not None and (
        isinstance(probability, bool)
        or not isinstance(probability, int | float)
        or not 0 < probability <= 1
    ):
        raise RuleError(f"{where}: probability must be a number in (0, 1]")
    if "retry_after" in raw and fault != "rate_limit":
        raise RuleError(f"{where}: retry_after applies to rate_limit rules only")
    return Rule(
        method=method.upper(),
        path=path,
        fault=fault,
        count=count,
        probability=None if probability is None else float(probability),
        retry_after=_retry_after(where, raw.get("retry_after", True)),
    )


def _retry_after(where: str, value: Any) -> int | None:
    if value is True:
        return DEFAULT_RETRY_AFTER
    if value is False:
        return None
    if isinstance(value, int) and value >= 0:
        return value
    raise RuleError(f"{where}: retry_after must be true, false or a number of seconds")


class Faults:
    def __init__(self, *, seed: int | None) -> None:
        self.seed = seed
        self.rules: list[Rule] = []
        self.rng = random.Random(seed)

    def replace(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.rng = random.Random(self.seed)

    def pick(self, method: str, path: str) -> Rule | None:
        """The fault for this request: the first live rule that matches decides."""
        for rule in self.rules:
            if rule.count == 0 or not rule.matches(method, path):
                continue  # a spent count rule is as good as gone
            if rule.count is not None:
                rule.count -= 1
                return rule
            # A probability rule that matches decides even when its draw says no:
            # "the first matching rule fires", and later rules are not a second chance.
            return rule if self.rng.random() < (rule.probability or 0.0) else None
        return None
