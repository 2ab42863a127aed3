"""Rules that relate one declared value to another, across lists, trunks and files.

Called by ``load`` once every account and trunk has passed its own model. Pure: takes
the declared objects with their origins and returns problems; never reads a file.

Errors (the API would refuse, or calls would break):
    an account name declared twice; two accounts with one SID, or one ledger file;
    a trunk naming an unknown account; a trunk name used twice in one account;
    renamed_from equal to the trunk's name, still declared, or claimed by two trunks;
    a DID, whitelisted IP, destination or credential username listed twice on a trunk;
    a DID declared on two trunks of one account;
    an IP destination not covered by a whitelisted IP/mask of the same trunk.
Warnings:
    an alias that is none of the account's declared DIDs;
    a whitelisted IP already covered by a wider one on the same trunk;
    allow_replace on a protected trunk (protect wins).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from typing import TypeVar

from reconciler.manifests import canonical
from reconciler.manifests.declared import Declared, NamedAccount, ledger_path
from reconciler.manifests.models import TrunkSpec
from reconciler.manifests.problems import Origin, Problem, Severity

T = TypeVar("T")
ERROR, WARNING = Severity.ERROR, Severity.WARNING


def _duplicates(
    origin: Origin, field: str, items: Sequence[T], key: Callable[[T], Hashable], what: str
) -> Iterable[Problem]:
    seen: dict[Hashable, int] = {}
    for index, item in enumerate(items):
        value = key(item)
        if value in seen:
            yield origin.problem(
                (field, index),
                ERROR,
                f"{what} {value} is listed twice (also {field}[{seen[value]}]); remove one",
            )
        else:
            seen[value] = index


def check_accounts(accounts: Sequence[NamedAccount]) -> list[Problem]:
    problems: list[Problem] = []
    first: dict[str, NamedAccount] = {}
    by_sid: dict[tuple[str, str], NamedAccount] = {}
    by_ledger: dict[str, NamedAccount] = {}
    for account in accounts:
        if account.name in first:
            problems.append(
                account.origin.problem(
                    (),
                    ERROR,
                    f"account {account.name!r} is already declared at "
                    f"{first[account.name].origin.where()}; declare each account once",
                    at_key=True,
                )
            )
            continue
        first[account.name] = account
        sid_key = (account.spec.sid, account.spec.region)
        if sid_key in by_sid:
            other = by_sid[sid_key]
            problems.append(
                account.origin.problem(
                    ("sid",),
                    ERROR,
                    f"account SID {account.spec.sid} is also account {other.name!r} "
                    f"({other.origin.where()}); two names for one account would fight "
                    "over its trunks",
                )
            )
        by_sid.setdefault(sid_key, account)
        ledger = ledger_path(account)
        if ledger in by_ledger:
            problems.append(
                account.origin.problem(
                    ("ledger",),
                    ERROR,
                    f"ledger {ledger} is also the ledger of account {by_ledger[ledger].name!r}; "
                    "give each account its own ledger file",
                )
            )
        by_ledger.setdefault(ledger, account)
    return problems


def check_trunks(
    trunks: Sequence[Declared[TrunkSpec]], known: set[str], *, complete: bool = True
) -> list[Problem]:
    """``known``: every declared account name, valid or not (a broken account is reported
    where it is written, not again at each of its trunks)."""
    problems: list[Problem] = []
    names: dict[tuple[str, str], Declared[TrunkSpec]] = {}
    renamed: dict[tuple[str, str], Declared[TrunkSpec]] = {}
    dids: dict[tuple[str, str], tuple[Declared[TrunkSpec], int]] = {}
    account_dids: dict[str, set[str]] = {}
    for trunk in trunks:
        spec, origin = trunk.spec, trunk.origin
        problems += _within_trunk(trunk)
        if spec.account not in known and complete:
            close = difflib.get_close_matches(spec.account, sorted(known), n=1, cutoff=0.6)
            hint = (
                f"; did you mean {close[0]!r}?"
                if close
                else f"; declared accounts: {', '.join(sorted(known)) or 'none'}"
            )
            problems.append(
                origin.problem(("account",), ERROR, f"unknown account {spec.account!r}{hint}")
            )
        key = (spec.account, spec.name)
        if key in names:
            problems.append(
                origin.problem(
                    ("name",),
                    ERROR,
                    f"trunk {spec.name!r} is already declared in account {spec.account!r} "
                    f"at {names[key].origin.where()}; trunk names are unique per account",
                )
            )
        names.setdefault(key, trunk)
        if spec.renamed_from is not None:
            old = (spec.account, spec.renamed_from)
            if old in renamed:
                problems.append(
                    origin.problem(
                        ("renamed_from",),
                        ERROR,
                        f"{spec.renamed_from!r} is also renamed by the trunk at "
                        f"{renamed[old].origin.where()}; one trunk can take over an old name",
                    )
                )
            renamed.setdefault(old, trunk)
        for index, number in enumerate(spec.phone_numbers):
            account_dids.setdefault(spec.account, set()).add(number.number)
            did_key = (spec.account, number.number)
            holder, at = dids.setdefault(did_key, (trunk, index))
            if holder is not trunk:
                problems.append(
                    origin.problem(
                        ("phone_numbers", index),
                        ERROR,
                        f"DID {number.number} is also declared on trunk {holder.spec.name!r} "
                        f"({holder.origin.where(('phone_numbers', at))}); "
                        "a DID can be on one trunk of an account only",
                    )
                )
    for old, trunk in renamed.items():
        still = names.get(old)
        if still is not None and still is not trunk:
            problems.append(
                trunk.origin.problem(
                    ("renamed_from",),
                    ERROR,
                    f"trunk {old[1]!r} is still declared ({still.origin.where()}); "
                    "remove it, or drop renamed_from",
                )
            )
    problems += _across_accounts(dids)
    for trunk in trunks:
        alias = trunk.spec.alias
        if alias is not None and alias not in account_dids.get(trunk.spec.account, set()):
            problems.append(
                trunk.origin.problem(
                    ("alias",),
                    WARNING,
                    f"alias {alias} is not one of the DIDs declared in account "
                    f"{trunk.spec.account}; callees would see a number the account may not own",
                )
            )
    return problems


def _across_accounts(
    dids: Mapping[tuple[str, str], tuple[Declared[TrunkSpec], int]],
) -> list[Problem]:
    """A DID belongs to one Exotel account: declared in two, one mapping fails at apply,
    and trace and serve, which look a DID up, would answer for either account."""
    first: dict[str, tuple[Declared[TrunkSpec], int]] = {}
    problems = []
    for (account, number), (trunk, index) in dids.items():  # in the order declared
        holder, at = first.setdefault(number, (trunk, index))
        if holder.spec.account != account:
            problems.append(
                trunk.origin.problem(
                    ("phone_numbers", index),
                    WARNING,
                    f"DID {number} is also declared in account {holder.spec.account} (trunk "
                    f"{holder.spec.name!r}, {holder.origin.where(('phone_numbers', at))}); a "
                    "number belongs to one Exotel account: mapping it fails in the other, and "
                    "trace and serve answer for one of them only",
                )
            )
    return problems


def _within_trunk(trunk: Declared[TrunkSpec]) -> list[Problem]:
    spec, origin = trunk.spec, trunk.origin
    problems: list[Problem] = []
    if spec.renamed_from == spec.name:
        problems.append(
            origin.problem(("renamed_from",), ERROR, "renamed_from equals name; drop renamed_from")
        )
    if spec.protect and spec.allow_replace:
        problems.append(
            origin.problem(
                ("allow_replace",),
                WARNING,
                "protect wins: a protected trunk is never replaced, so allow_replace has no effect",
            )
        )
    problems += _duplicates(origin, "phone_numbers", spec.phone_numbers, lambda n: n.number, "DID")
    problems += _duplicates(origin, "whitelisted_ips", spec.whitelisted_ips, lambda ip: ip, "IP")
    problems += _duplicates(
        origin, "destination_uris", spec.destination_uris, lambda d: d.uri, "destination"
    )
    problems += _duplicates(
        origin, "credentials", spec.credentials, lambda c: c.username, "username"
    )
    ranges = [canonical.network_range(ip) for ip in spec.whitelisted_ips]
    for index, (first, last) in enumerate(ranges):
        wider = next(
            (
                spec.whitelisted_ips[other]
                for other, (low, high) in enumerate(ranges)
                if (low, high) != (first, last) and low <= first and last <= high
            ),
            None,
        )
        if wider is not None:
            problems.append(
                origin.problem(
                    ("whitelisted_ips", index),
                    WARNING,
                    f"{spec.whitelisted_ips[index]} is already covered by {wider}",
                )
            )
    weights: dict[int, list[int]] = {}
    for index, destination in enumerate(spec.destination_uris):
        weights.setdefault(destination.priority, []).append(index)
    for priority, indexes in sorted(weights.items()):
        if len(indexes) > 1 and all(spec.destination_uris[i].weight == 0 for i in indexes):
            problems.append(
                origin.problem(
                    ("destination_uris", indexes[0], "weight"),
                    WARNING,
                    f"every destination at priority {priority} has weight 0, so nothing says "
                    "how calls are shared among them (as in DNS SRV, the tools read it as "
                    "evenly): give each a weight of 1 or more",
                )
            )
    for index, destination in enumerate(spec.destination_uris):
        address = canonical.destination_ip(destination.uri)
        if address is not None and not any(low <= int(address) <= high for low, high in ranges):
            problems.append(
                origin.problem(
                    ("destination_uris", index),
                    ERROR,
                    f"{address} is not covered by this trunk's whitelisted_ips, and Exotel refuses "
                    f"an IP destination that is not whitelisted: add {address} to whitelisted_ips, "
                    "or use a host name",
                )
            )
    return problems
