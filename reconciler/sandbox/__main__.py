"""``python -m reconciler.sandbox``: the sandbox alone; same options as ``reconciler sandbox``."""

from __future__ import annotations

import argparse

from reconciler.sandbox import add_arguments, run

parser = argparse.ArgumentParser(
    prog="python -m reconciler.sandbox", description="Serve an emulator of Exotel's vSIP API."
)
add_arguments(parser)
raise SystemExit(run(parser.parse_args()))
