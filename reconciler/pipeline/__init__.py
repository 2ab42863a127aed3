"""Sequencing of the stages, one function per command: plan, apply, import.

The CLI calls these; each raises the error tree's exceptions and returns data for
``render``. See docs/architecture.md for the stages they sequence.
"""

from reconciler.pipeline.accounts import Options
from reconciler.pipeline.applying import ApplyOptions, apply
from reconciler.pipeline.importing import import_trunks
from reconciler.pipeline.planning import make_plan

__all__ = ["ApplyOptions", "Options", "apply", "import_trunks", "make_plan"]
