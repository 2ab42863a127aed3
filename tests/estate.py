"""An estate for tests: manifests on disk, live state made through the raw API, a ledger.

``seed`` builds live state the way a person following Exotel's docs would (no ``sip:``
prefix on destinations, ``mode`` omitted for pstn, the alias through settings), never
through the reconciler, so a plan that comes out empty proves the normalisation.
"""

from __future__ import annotations

import asyncio
import textwrap
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reconciler.live import ledger as ledgers
from reconciler.live.ledger import Ledger, TrunkEntry, fingerprint
from reconciler.manifests.load import Manifests, load
from reconciler.pipeline import ApplyOptions, Options, make_plan
from reconciler.pipeline import apply as run_apply
from reconciler.plan.actions import ApplyResult, Plan
from reconciler.plan.diff import parts
from tests.sandboxes import Api, Sandbox, ok

PASSWORD = "Canary_pw_7f3a9"  # distinctive, so tests can prove it never leaks
TOKEN = "demo_token"


def account_yaml(*, profile: str = "full", prune: bool = False, sid: str = "demo") -> str:
    return textwrap.dedent(
        f"""\
        accounts:
          demo:
            sid: {sid}
            api_key: ${{EXOTEL_API_KEY}}
            api_token: ${{EXOTEL_API_TOKEN}}
            api: {profile}
            prune: {str(prune).lower()}
        """
    )


def write(folder: Path, trunks: str, *, profile: str = "full", prune: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "accounts.yaml").write_text(account_yaml(profile=profile, prune=prune))
    (folder / "trunks.yaml").write_text(
        "trunks:\n" + textwrap.indent(textwrap.dedent(trunks), "  ")
    )
    return folder


def environ(sandbox: Sandbox, **extra: str) -> dict[str, str]:
    return {
        "EXOTEL_BASE_URL": sandbox.url,
        # In CI, credentials go only to Exotel's hosts unless the environment allows another.
        "RECONCILER_ALLOWED_HOSTS": urlsplit(sandbox.url).netloc,
        "EXOTEL_API_KEY": "demo_key",
        "EXOTEL_API_TOKEN": TOKEN,
        "SIP_PASSWORD": PASSWORD,
        # The sandbox serves LiveKit's SIP API too, to LiveKit's development key.
        "LIVEKIT_URL": sandbox.url,
        "LIVEKIT_API_KEY": "devkey",
        "LIVEKIT_API_SECRET": "secret",
        **extra,
    }


def plan(folder: Path, sandbox: Sandbox, **options: Any) -> Plan:
    manifests = load(folder)
    assert not manifests.errors, manifests.errors
    return asyncio.run(
        make_plan(manifests, accounts=[], environ=environ(sandbox), options=Options(**options))
    )


def seed(api: Api, folder: Path, *, record: bool = True) -> dict[str, str]:
    """Create every declared trunk through the raw API; write the ledger unless told not to."""
    manifests: Manifests = load(folder)
    entries = {}
    for declared in manifests.trunks:
        spec = declared.spec
        body = {"trunk_name": spec.name, "nso_code": spec.nso_code, "domain_name": spec.domain_name}
        sid = str(ok(api.post("/trunks", body))["trunk_sid"])
        trunk = api.trunk(sid)
        for ip in spec.whitelisted_ips:
            address, mask = ip.split("/")
            trunk.whitelist(address, int(mask))
        if spec.destination_uris:
            items = [
                {"destination": d.uri, "priority": d.priority, "weight": d.weight}
                for d in spec.destination_uris
            ]
            assert trunk.post("destination-uris", {"destinations": items}).status_code == 200
        for number in spec.phone_numbers:
            trunk.map(number.number, None if number.mode == "pstn" else number.mode)
        if spec.alias:
            setting = {"name": "trunk_external_alias", "value": spec.alias}
            assert trunk.post("settings", {"settings": [setting]}).status_code == 200
        for credential in spec.credentials:
            body = {"user_name": credential.username, "password": PASSWORD}
            if credential.friendly_name:
                body["friendly_name"] = credential.friendly_name
            ok(trunk.post("credentials", body))
        entries[spec.name] = TrunkEntry(
            sid=sid,
            protect=spec.protect,
            alias=spec.alias,
            credentials={c.username: c.password_version for c in spec.credentials},
            fingerprint=fingerprint(spec),
            parts=parts(spec),
        )
    if record:
        ledgers.write(folder / "state" / "demo.json", Ledger("demo", "demo", entries))
    return {name: entry.sid for name, entry in entries.items()}


def by_address(plan: Plan) -> dict[str, tuple[str, str, str]]:
    """address -> (symbol, operation, origin): the shape most assertions need."""
    return {a.address: (a.symbol, a.operation, str(a.origin)) for a in plan.actions}


def apply(
    folder: Path, sandbox: Sandbox, *, env: dict[str, str] | None = None, **options: Any
) -> ApplyResult:
    """An approved apply, in process, against the sandbox."""
    apply_keys = {"force", "saved_plans", "break_lock", "lock_timeout"}
    manifests = load(folder)
    assert not manifests.errors, manifests.errors
    return asyncio.run(
        run_apply(
            manifests,
            accounts=[],
            environ=env or environ(sandbox),
            options=Options(**{k: v for k, v in options.items() if k not in apply_keys}),
            apply_options=ApplyOptions(**{k: v for k, v in options.items() if k in apply_keys}),
            confirm=lambda plan: True,
        )
    )


def writes(sandbox: Sandbox) -> int:
    """API write calls the sandbox has seen since its last reset."""
    routes = sandbox.stats()["by_route"]
    return sum(n for route, n in routes.items() if not route.startswith("GET"))


def live_trunks(sandbox: Sandbox) -> list[dict[str, Any]]:
    trunks: list[dict[str, Any]] = sandbox.state()["accounts"]["demo"]["trunks"]
    return trunks
