"""Exotel in a box under load: 50 concurrent inbound calls, each with 5 s of G.711 RTP both
ways, through the sandbox to a real SIPp UAS that echoes the media.

Starts SIPp (``tests/sip/answer_pcma.xml`` with ``-rtp_echo``) and ``reconciler sandbox
--sip-port 0`` as processes, sets up a trunk through the sandbox's API as apply would,
places the calls at once with ``POST /_sandbox/calls`` and waits for their records. Prints
beside each bound: calls completed (all of them), the sandbox's CPU time per call-second
(from /proc, whole process: SIP, RTP and the API), and the interarrival jitter (RFC 3550)
of the echoed media, which is what the sandbox adds on top of loopback.

    python benchmarks/sandbox_calls.py [--calls 50] [--seconds 5]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).parents[1]
sys.path.insert(0, str(ROOT))

from tests.sandboxes import Api, running  # noqa: E402
from tests.sipservers import sipp_uas  # noqa: E402

DID = "+918040264208"
CPU_BOUND_MS = 20.0  # sandbox CPU per call-second
JITTER_BOUND_MS = 5.0  # p99 of the legs' jitter


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks  # utime + stime


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    if shutil.which("sipp") is None:
        print("needs SIPp (Debian's sip-tester)", file=sys.stderr)
        return 1
    folder = Path(tempfile.mkdtemp(prefix="sandbox-calls-"))
    with sipp_uas(folder, "answer_pcma", echo=True) as sbc:
        resolve = f"sbc.example.com:{sbc.port}:127.0.0.1"
        with running(
            "--sip-port", "0", "--resolve", resolve, "--rate-limit", "0",
            log_path=folder / "sandbox.log",
        ) as sandbox:  # fmt: skip
            api = Api(sandbox.http)
            sid = api.create_trunk("bench")
            api.trunk(sid).map(DID)
            destination = {"destination": f"sbc.example.com:{sbc.port};transport=tcp"}
            api.trunk(sid).post("destination-uris", {"destinations": [destination]})
            before = cpu_seconds(sandbox.process.pid)
            started = time.monotonic()
            sids = []
            for _ in range(args.calls):
                body = {"to": DID, "hangup_after_s": args.seconds}
                sids.append(sandbox.http.post("/_sandbox/calls", json=body).json()["call_sid"])
            with httpx.Client(base_url=sandbox.url, timeout=120) as http:
                records = [
                    http.get(f"/_sandbox/calls/{sid}", params={"wait": 100}).json() for sid in sids
                ]
            took = time.monotonic() - started
            cpu = cpu_seconds(sandbox.process.pid) - before
    completed = sum(r["status"] == "completed" for r in records)
    media = [leg["media"] for r in records for leg in r["legs"] if leg.get("media")]
    jitters = sorted(m["jitter_ms"] for m in media)
    sent = sum(m["packets_sent"] for m in media)
    back = sum(m["own_tone_back"] for m in media)
    call_seconds = args.calls * args.seconds
    per = cpu * 1000 / call_seconds
    p99 = jitters[min(len(jitters) - 1, int(len(jitters) * 0.99))] if jitters else float("nan")
    print(f"calls completed        {completed} of {args.calls}  (bound: all)")
    print(f"wall time              {took:.1f} s for {args.seconds:g} s calls")
    bound = f"(bound: {CPU_BOUND_MS:g} ms)"
    print(f"sandbox CPU            {cpu:.2f} s = {per:.2f} ms per call-second  {bound}")
    print(f"RTP packets            {sent} sent, {back} echoed back ({back / max(sent, 1):.1%})")
    median = statistics.median(jitters) if jitters else 0.0
    most = jitters[-1] if jitters else 0.0
    print(
        f"jitter of echoed RTP   median {median:.3f} ms, p99 {p99:.3f} ms, max {most:.3f} ms"
        f"  (bound: p99 {JITTER_BOUND_MS:g} ms)"
    )
    shutil.rmtree(folder, ignore_errors=True)
    ok = completed == args.calls and per <= CPU_BOUND_MS and p99 <= JITTER_BOUND_MS
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
