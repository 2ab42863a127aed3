"""``reconciler call``: place a call to a DID through Exotel in a box, and bring back its
record (docs/sandbox.md, "Calls").

Called by the CLI. The DID's account is the one whose manifests declare it (or
``--account``); its API URL must be a sandbox's: against Exotel's own hosts it refuses,
since a real call would ring real phones and this command is for rehearsals; ``trace``
explains a real call and ``check --invite`` places a test INVITE to a destination.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from reconciler.errors import ConfigError, ManifestError
from reconciler.exotel import calls
from reconciler.exotel.transport import OFFICIAL_HOSTS, base_url
from reconciler.manifests import canonical
from reconciler.manifests.load import Manifests
from reconciler.pipeline.accounts import select


async def call(
    manifests: Manifests,
    did: str,
    *,
    caller: str,
    accounts: Sequence[str],
    environ: Mapping[str, str],
    at: datetime | None,
    hangup_after: float,
    play: str | None = None,
) -> dict[str, Any]:
    if manifests.errors:
        raise ManifestError(manifests.errors)
    number, calling = _number(did, "DID"), _number(caller, "--from")
    chosen = select(manifests, accounts)
    names = {a.name for a in chosen}
    declaring = sorted(
        {
            t.spec.account
            for t in manifests.trunks
            if t.spec.account in names and any(n.number == number for n in t.spec.phone_numbers)
        }
    )
    if not declaring:
        if len(chosen) != 1:
            raise ConfigError(
                f"no trunk declares {number}: name its account with --account to call it anyway"
            )
        declaring = [chosen[0].name]
    if len(declaring) > 1:
        raise ConfigError(f"{number} is declared in accounts {', '.join(declaring)}: name one")
    account = manifests.accounts[declaring[0]]
    url = base_url(account.spec.region, account.spec.base_url, environ)
    host = urlsplit(url).hostname or ""
    if host in OFFICIAL_HOSTS:
        raise ConfigError(
            f"account {account.name} talks to Exotel itself ({host}): reconciler call places "
            "calls through a sandbox only (reconciler sandbox --sip-port ...), never real ones. "
            f"To see where a real call to {number} goes, run reconciler trace {number}; to test "
            "a destination with a real INVITE, reconciler check --invite"
        )
    return await calls.place(
        url,
        account=account.spec.sid,
        to=number,
        caller=calling,
        hangup_after=hangup_after,
        at=at,
        longest=hangup_after * 4 + 120,
        play=play,
    )


def _number(text: str, what: str) -> str:
    """E.164, or an Indian number as Exotel writes it (``0`` and ten digits), as trace takes."""
    compact = text.strip().replace(" ", "").replace("-", "")
    if re.fullmatch(r"0[1-9][0-9]{9}", compact):
        return "+91" + compact[1:]
    try:
        return canonical.e164(compact)
    except ValueError as exc:
        raise ConfigError(f"{what} {text!r}: {exc}") from None
