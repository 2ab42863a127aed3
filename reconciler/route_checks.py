"""Rules that relate routes to trunks, DIDs and each other (``reconciler validate``).

Called by ``load`` once every route passed its model. Pure.

Errors: a route of an unknown account; a DID routed twice in one account; a target
trunk not declared in the route's account; a routed DID not mapped on a declared trunk
of the same account (the call would never reach the flow that asks us).
Warnings: a rule that can never match (an earlier rule always matches, or has the
same conditions); a default no call can reach.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.checks import Declared
from reconciler.models import TrunkSpec
from reconciler.problems import Problem, Severity
from reconciler.route_models import CATCH_ALL, Conditions, RouteSpec

ERROR, WARNING = Severity.ERROR, Severity.WARNING


def check_routes(
    routes: Sequence[Declared[RouteSpec]],
    trunks: Sequence[Declared[TrunkSpec]],
    accounts: set[str],
) -> list[Problem]:
    problems: list[Problem] = []
    names = {(t.spec.account, t.spec.name) for t in trunks}
    mapped = {(t.spec.account, n.number) for t in trunks for n in t.spec.phone_numbers}
    seen: dict[tuple[str, str], Declared[RouteSpec]] = {}
    for declared in routes:
        route, origin = declared.spec, declared.origin
        if route.account not in accounts:
            problems.append(
                origin.problem(("account",), ERROR, f"unknown account {route.account!r}")
            )
            continue
        key = (route.account, route.did)
        if key in seen:
            problems.append(
                origin.problem(
                    ("did",), ERROR,
                    f"{route.did} is already routed at {seen[key].origin.where()}; "
                    "one route per DID",
                )
            )  # fmt: skip
        seen.setdefault(key, declared)
        if route.did != CATCH_ALL and key not in mapped:
            problems.append(
                origin.problem(
                    ("did",), ERROR,
                    f"{route.did} is not mapped on any declared trunk of account {route.account}: "
                    "calls to it never reach a flow that asks this service",
                )
            )  # fmt: skip
        for where, target in route.targets():
            if (route.account, target.trunk) not in names:
                problems.append(
                    origin.problem(
                        (*where, "trunk"), ERROR,
                        f"trunk {target.trunk!r} is not declared in account {route.account}",
                    )
                )  # fmt: skip
        problems += _reachability(declared)
    return problems


def _reachability(declared: Declared[RouteSpec]) -> list[Problem]:
    route, origin = declared.spec, declared.origin
    problems = []
    earlier: list[Conditions] = []
    for index, rule in enumerate(route.rules):
        if any(previous.always() for previous in earlier):
            problems.append(
                origin.problem(
                    ("rules", index), WARNING, "never reached: an earlier rule always matches"
                )
            )
        elif any(previous == rule.when for previous in earlier):
            problems.append(
                origin.problem(
                    ("rules", index),
                    WARNING,
                    "never reached: an earlier rule has the same conditions",
                )
            )
        earlier.append(rule.when)
    if any(rule.when.always() for rule in route.rules):
        problems.append(
            origin.problem(("default",), WARNING, "never reached: a rule always matches before it")
        )
    return problems
