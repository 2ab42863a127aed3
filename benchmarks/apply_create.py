"""Apply creating 500 trunks against ``reconciler sandbox --latency-ms 200 --rate-limit 0``.

Each trunk: 3 DIDs, 2 whitelisted IPs, 2 destinations, 1 credential and the alias.
Prints, each beside its bound:
- write calls made / the minimum (per trunk: create, 2 IPs, 1 batch of destinations,
  3 DIDs, the alias, the credential = 9): target 1.00;
- wall time against (all calls) x 200 ms / 50 connections: target within 1.3x; and the
  critical path of one trunk (its 9 writes in order, then its verification reads);
- the speed-up over creating the same trunks the way Exotel's sample curl scripts do,
  one call at a time (timed on a sample of trunks and scaled, since 4,500 sequential
  calls at 200 ms take 15 minutes).

    python benchmarks/apply_create.py [--trunks 500] [--sequential-sample 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).parent))

from estate import AUTH, ENVIRON, PASSWORD, Sandbox, write_manifests

from reconciler.cli import logs
from reconciler.manifests.load import load
from reconciler.pipeline import ApplyOptions, Options, apply

LATENCY_MS = 200
CONNECTIONS = 50
WRITES_PER_TRUNK = 9
CHAIN_PER_TRUNK = 9  # create; 2 IPs; destinations; 3 DIDs; alias; credential, in order


def writes(stats: dict[str, object]) -> int:
    by_route = stats["by_route"]
    assert isinstance(by_route, dict)
    return sum(n for route, n in by_route.items() if not route.startswith("GET"))


def calls(stats: dict[str, object]) -> int:
    total = stats["requests"]
    assert isinstance(total, int)
    return total


def ours(folder: Path) -> tuple[float, dict[str, object]]:
    sandbox = Sandbox("--latency-ms", str(LATENCY_MS), "--rate-limit", "0")
    try:
        environ = {**ENVIRON, "EXOTEL_BASE_URL": sandbox.url}
        started = time.perf_counter()
        result = asyncio.run(
            apply(
                load(folder), accounts=[], environ=environ, options=Options(per_minute=0),
                apply_options=ApplyOptions(), confirm=lambda plan: True,
            )
        )  # fmt: skip
        elapsed = time.perf_counter() - started
        assert result.converged, result.remaining.actions[:3]
        return elapsed, sandbox.stats()
    finally:
        sandbox.stop()


def sequential(folder: Path, sample: int) -> float:
    """The sample trunks created call by call, as a curl script would: seconds per trunk."""
    specs = [t.spec for t in load(folder).trunks][:sample]
    sandbox = Sandbox("--latency-ms", str(LATENCY_MS), "--rate-limit", "0")
    try:
        with httpx.Client(
            base_url=f"{sandbox.url}/v2/accounts/demo", auth=AUTH, timeout=30
        ) as http:
            started = time.perf_counter()
            for spec in specs:
                body = {
                    "trunk_name": spec.name,
                    "nso_code": "ANY-ANY",
                    "domain_name": spec.domain_name,
                }
                sid = http.post("/trunks", json=body).json()["response"]["data"]["trunk_sid"]
                for ip in spec.whitelisted_ips:
                    address, mask = ip.split("/")
                    http.post(
                        f"/trunks/{sid}/whitelisted-ips", json={"ip": address, "mask": int(mask)}
                    )
                items = [
                    {"destination": d.uri, "priority": d.priority} for d in spec.destination_uris
                ]
                http.post(f"/trunks/{sid}/destination-uris", json={"destinations": items})
                for number in spec.phone_numbers:
                    http.post(
                        f"/trunks/{sid}/phone-numbers",
                        json={"phone_number": number.number, "mode": number.mode},
                    )
                setting = {"name": "trunk_external_alias", "value": spec.alias}
                http.post(f"/trunks/{sid}/settings", json={"settings": [setting]})
                for credential in spec.credentials:
                    http.post(
                        f"/trunks/{sid}/credentials",
                        json={"user_name": credential.username, "password": PASSWORD},
                    )
            return (time.perf_counter() - started) / len(specs)
    finally:
        sandbox.stop()


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trunks", type=int, default=500)
    parser.add_argument("--sequential-sample", type=int, default=20)
    args = parser.parse_args()
    logs.configure()
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory) / "manifests"
        write_manifests(folder, args.trunks)
        elapsed, stats = ours(folder)
        per_trunk = sequential(folder, args.sequential_sample)
    made, minimum = writes(stats), args.trunks * WRITES_PER_TRUNK
    total = calls(stats)
    ideal = total * LATENCY_MS / 1000 / CONNECTIONS
    chain = (CHAIN_PER_TRUNK + 1) * LATENCY_MS / 1000  # + one round of verification reads
    curl_scripts = per_trunk * args.trunks
    print(f"apply creating {args.trunks} trunks at {LATENCY_MS} ms latency")
    print(f"  write calls: {made} made / {minimum} minimum = {made / minimum:.2f} (target: 1.00)")
    print(
        f"  wall time: {elapsed:.1f} s for {total} calls (reads included) vs {ideal:.1f} s "
        f"(calls x {LATENCY_MS} ms / {CONNECTIONS}) = {elapsed / ideal:.2f}x "
        f"(target: at most 1.3x); critical path of one trunk: {chain:.1f} s"
    )
    print(
        f"  one call at a time (curl-script style): {per_trunk:.2f} s per trunk, measured on "
        f"{args.sequential_sample} trunks = {curl_scripts:.0f} s for {args.trunks}; "
        f"speed-up: {curl_scripts / elapsed:.0f}x"
    )
    met = made == minimum and elapsed <= 1.3 * ideal
    print("result:", "targets met" if met else "TARGET MISSED")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
