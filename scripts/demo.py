"""``make demo``: Exotel's vSIP setup flow, walked against the embedded sandbox.

Starts ``reconciler sandbox`` on a free loopback port, makes the calls a team makes to
connect a SIP platform (create a trunk, map a DID, whitelist an IP, add destinations,
set the outbound alias), lists what the trunk now holds, shows two of the API's quirks
the reconciler is built around, and stops the sandbox. Needs no Exotel account and
no network. Exits 0 when every step answered as Exotel documents.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from typing import Any

import httpx

ACCOUNT = "demo"
AUTH = ("demo_key", "demo_token")
DID = "+918040264208"
SBC_IP = "44.248.146.11"


def start_sandbox() -> tuple[subprocess.Popen[str], str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "reconciler", "sandbox", "--port", "0", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line.startswith("listening on "):
        process.kill()
        raise SystemExit(f"the sandbox did not start: {line!r}")
    return process, line.split()[-1]


class UnexpectedAnswerError(Exception):
    pass


def show(
    step: str, response: httpx.Response, *, status: int = 200, codes: tuple[int, ...] = (200,)
) -> Any:
    """Print one call and what came back; check it is what Exotel documents; return the data."""
    document = response.json()
    request = response.request
    envelope = document["response"]
    items = envelope if isinstance(envelope, list) else [envelope]
    outcome = ", ".join(f"{item['code']} {item['status']}" for item in items) or "empty list"
    print(f"\n{step}\n  {request.method} {request.url.raw_path.decode()}")
    print(f"  HTTP {response.status_code}, envelope: {outcome}")
    for item in items:
        shown = item["data"] if item["status"] == "success" else item["error_data"]
        print("   ", json.dumps(shown))
    got = tuple(sorted({item["code"] for item in items}))
    if response.status_code != status or (items and got != codes):
        raise UnexpectedAnswerError(
            f"{step}: expected HTTP {status} with {codes}, got {response.status_code} {got}"
        )
    return [item["data"] for item in items] if isinstance(envelope, list) else envelope["data"]


def walk(client: httpx.Client) -> None:
    root = f"/v2/accounts/{ACCOUNT}"
    trunk = show(
        "1. Create a trunk",
        client.post(
            f"{root}/trunks",
            json={
                "trunk_name": "blr_bot",
                "nso_code": "ANY-ANY",
                "domain_name": f"{ACCOUNT}.pstn.exotel.com",
            },
        ),
    )
    base = f"{root}/trunks/{trunk['trunk_sid']}"
    show(
        "2. Map a DID to it, in flow mode",
        client.post(f"{base}/phone-numbers", json={"phone_number": DID, "mode": "flow"}),
    )
    show(
        "3. Whitelist the SBC's public IP",
        client.post(f"{base}/whitelisted-ips", json={"ip": SBC_IP, "mask": 32}),
    )
    show(
        "4. Add inbound destinations (one request for all of them)",
        client.post(
            f"{base}/destination-uris",
            json={
                "destinations": [
                    {"destination": f"{SBC_IP}:5061;transport=tls"},
                    {"destination": "sip.company.com:5061;transport=tls", "priority": 1},
                ]
            },
        ),
    )
    show(
        "5. Set the outbound caller ID (trunk_external_alias)",
        client.post(
            f"{base}/settings", json={"settings": [{"name": "trunk_external_alias", "value": DID}]}
        ),
    )
    for child in ("phone-numbers", "whitelisted-ips", "destination-uris", "settings"):
        show(f"6. List {child}", client.get(f"{base}/{child}"))
    print("\nTwo quirks the reconciler handles for you:")
    show(
        "a. Mapping the DID again is a duplicate: HTTP 200, yet envelope 409 / error 1008",
        client.post(f"{base}/phone-numbers", json={"phone_number": DID}),
        codes=(409,),
    )
    show(
        "b. An IP destination that is not whitelisted: HTTP 207 with a per-item failure",
        client.post(
            f"{base}/destination-uris",
            json={"destinations": [{"destination": "13.126.40.7:5061;transport=tls"}]},
        ),
        status=207,
        codes=(400,),
    )


def main() -> int:
    process, url = start_sandbox()
    print(f"Started the Exotel sandbox: {url} (account {ACCOUNT}, key {AUTH[0]})")
    try:
        with httpx.Client(base_url=url, auth=AUTH, timeout=10) as client:
            walk(client)
    except UnexpectedAnswerError as exc:
        print(f"\nThe sandbox did not answer as documented: {exc}", file=sys.stderr)
        return 1
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=10)
        print(f"\nStopped the sandbox (exit {code}).")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
