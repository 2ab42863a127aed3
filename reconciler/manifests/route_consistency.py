"""Rules that relate routes to trunks, DIDs and each other (``reconciler validate``).

Called by ``load`` once every route passed its model. Pure.

Errors: a route of an unknown account; a DID routed twice in one account; a target
trunk not declared in the route's account; a routed DID not mapped on a declared trunk
of the same account (the call would never reach the flow that asks us).
Warnings: a rule that can never match (an earlier rule matches every call it would:
wider caller prefixes, a window containing its window, more weekdays); a default no
call can reach; a routed DID in mode pstn (its calls never ask this service).
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.manifests.declared import Declared
from reconciler.manifests.models import TrunkSpec
from reconciler.manifests.problems import Problem, Severity, did_you_mean
from reconciler.manifests.routes import CATCH_ALL, Conditions, RouteSpec
from reconciler.manifests.windows import week_minutes

ERROR, WARNING = Severity.ERROR, Severity.WARNING
WEEK = 7 * 24 * 60


def check_routes(
    routes: Sequence[Declared[RouteSpec]],
    trunks: Sequence[Declared[TrunkSpec]],
    accounts: set[str],
    *,
    complete: bool = True,
) -> list[Problem]:
    """``complete``: every file parsed. When one did not, what routes refer to may be
    declared in it: those references are not checked (no cascade of "not declared")."""
    problems: list[Problem] = []
    names = {(t.spec.account, t.spec.name) for t in trunks}
    mapped = {(t.spec.account, n.number): n.mode for t in trunks for n in t.spec.phone_numbers}
    seen: dict[tuple[str, str], Declared[RouteSpec]] = {}
    for declared in routes:
        route, origin = declared.spec, declared.origin
        if route.account not in accounts:
            if not complete:
                continue
            problems.append(
                origin.problem(("account",), ERROR, f"unknown account {route.account!r}")
            )
            continue
        key = (route.account, route.did)
        if key in seen:
            problems.append(
                origin.problem(
                    ("did",),
                    ERROR,
                    f"{route.did} is already routed at {seen[key].origin.where()}; "
                    "one route per DID",
                )
            )
        seen.setdefault(key, declared)
        elsewhere = next(
            (d for (a, did), d in seen.items() if did == route.did and a != route.account), None
        )
        if route.did != CATCH_ALL and elsewhere is not None:
            problems.append(
                origin.problem(
                    ("did",),
                    ERROR,
                    f"{route.did} is routed in account {elsewhere.spec.account} too "
                    f"({elsewhere.origin.where()}); a number belongs to one Exotel account, "
                    "and serve would answer for either: route it in the account that owns it",
                )
            )
        if route.did != CATCH_ALL and key not in mapped and complete:
            problems.append(
                origin.problem(
                    ("did",),
                    ERROR,
                    f"{route.did} is not mapped on any declared trunk of account {route.account}: "
                    "calls to it never reach a flow that asks this service",
                )
            )
        elif route.did != CATCH_ALL and mapped[key] == "pstn":
            problems.append(
                origin.problem(
                    ("did",),
                    WARNING,
                    f"{route.did} is mapped in mode pstn, which sends calls straight to the trunk: "
                    "only mode: flow reaches a Connect applet that asks this service",
                )
            )
        for where, target in route.targets():
            if (route.account, target.trunk) not in names and complete:
                problems.append(
                    origin.problem(
                        (*where, "trunk"),
                        ERROR,
                        f"trunk {target.trunk!r} is not declared in account {route.account}"
                        + did_you_mean(target.trunk, [n for a, n in names if a == route.account]),
                    )
                )
        problems += _reachability(declared)
    return problems


def _covers(earlier: Conditions, later: Conditions) -> bool:
    """Whether every call ``later`` matches is matched by ``earlier`` too."""
    if earlier.caller_prefixes and not (
        later.caller_prefixes
        and all(
            any(prefix.startswith(wider) for wider in earlier.caller_prefixes)
            for prefix in later.caller_prefixes
        )
    ):
        return False
    return _times(later) <= _times(earlier)


def _times(conditions: Conditions) -> frozenset[int]:
    return week_minutes(conditions.hours, tuple(sorted(set(conditions.weekdays))))


def _always(conditions: Conditions) -> bool:
    return not conditions.caller_prefixes and len(_times(conditions)) == WEEK


def _reachability(declared: Declared[RouteSpec]) -> list[Problem]:
    """Rules an earlier single rule always beats (wider prefixes, a longer window, more
    days), and a default behind a rule that always matches."""
    route, origin = declared.spec, declared.origin
    problems = []
    for index, rule in enumerate(route.rules):
        for before, previous in enumerate(route.rules[:index]):
            if _covers(previous.when, rule.when):
                why = (
                    "always matches"
                    if _always(previous.when)
                    else "matches every call this one does"
                )
                problems.append(
                    origin.problem(
                        ("rules", index), WARNING, f"never reached: rules[{before}] {why}"
                    )
                )
                break
    if any(_always(rule.when) for rule in route.rules):
        problems.append(
            origin.problem(("default",), WARNING, "never reached: a rule always matches before it")
        )
    return problems
