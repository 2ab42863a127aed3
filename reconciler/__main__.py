"""``python -m reconciler``: the same entry point as the ``reconciler`` console script."""

from __future__ import annotations

from reconciler.cli.main import main

raise SystemExit(main())
