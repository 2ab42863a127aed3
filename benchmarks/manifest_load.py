"""Load + validate time for a large estate: 5,000 trunks, about 50,000 child entries.

Writes 50 manifest files (100 trunks each, 10 children per trunk: 2 DIDs, 3 whitelisted
IPs, 3 destinations, 1 credential and an alias) into a temporary folder, then times
``reconciler.manifests.load.load`` over them: YAML parsing, every model, every cross-object check.
Prints the best of a few runs beside the target (under 3 seconds) and exits 1 if missed,
then the wall-clock time of the whole ``reconciler validate`` command for comparison.

    python benchmarks/manifest_load.py [--trunks 5000] [--files 50] [--runs 3]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from reconciler.manifests.load import load

TARGET_SECONDS = 3.0


def trunk_yaml(index: int) -> str:
    a, b = divmod(index, 250)
    return f"""  - name: trunk_{index:05d}
    account: prod
    phone_numbers:
      - number: "+9180{index:08d}"
        mode: flow
      - "+9122{index:08d}"
    whitelisted_ips:
      - 44.{a % 200 + 1}.{b}.1
      - 44.{a % 200 + 1}.{b}.2
      - 13.{a % 200 + 1}.{b}.0/24
    destination_uris:
      - 44.{a % 200 + 1}.{b}.1:5061;transport=tls
      - uri: sbc{index}.example.com:5061;transport=tls
        priority: 1
        weight: 2
      - sbc{index}-dr.example.com:5060;transport=tcp
    alias: "+9180{index:08d}"
    credentials:
      - username: user_{index}
        password: ${{SIP_PASSWORD_{index}}}
        password_version: 1
"""


def generate(folder: Path, trunks: int, files: int) -> int:
    (folder / "accounts.yaml").write_text(
        "accounts:\n  prod:\n    sid: ameyo5m\n"
        "    api_key: ${EXOTEL_API_KEY}\n    api_token: ${EXOTEL_API_TOKEN}\n"
    )
    per_file = trunks // files
    for number in range(files):
        body = "".join(trunk_yaml(number * per_file + i) for i in range(per_file))
        (folder / f"trunks_{number:03d}.yaml").write_text("trunks:\n" + body)
    return per_file * files


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trunks", type=int, default=5000)
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        folder = Path(directory)
        count = generate(folder, args.trunks, args.files)
        timings = []
        for _ in range(args.runs):
            started = time.perf_counter()
            manifests = load(folder)
            timings.append(time.perf_counter() - started)
        if manifests.errors:
            print(
                "the generated manifests are invalid:", manifests.errors[0].text(), file=sys.stderr
            )
            return 1
        started = time.perf_counter()
        command = [sys.executable, "-m", "reconciler", "validate", str(folder)]
        subprocess.run(command, check=True, capture_output=True)
        whole_command = time.perf_counter() - started
    children = sum(
        len(t.spec.phone_numbers)
        + len(t.spec.whitelisted_ips)
        + len(t.spec.destination_uris)
        + len(t.spec.credentials)
        + (t.spec.alias is not None)
        for t in manifests.trunks
    )
    best = min(timings)
    print(f"manifests: {args.files + 1} files, {count:,} trunks, {children:,} child entries")
    print(
        f"load + validate: best {best:.2f} s of {args.runs} runs "
        f"(target: under {TARGET_SECONDS:g} s)"
    )
    print(f"`reconciler validate` as a command, start-up included: {whole_command:.2f} s")
    print("result:", "target met" if best < TARGET_SECONDS else "TARGET MISSED")
    return 0 if best < TARGET_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
