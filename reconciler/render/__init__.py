"""Plans, apply reports and drift, as text, markdown and JSON: what people review and
what machines read. Pure: each takes what a stage made and returns a string.

``plans`` renders a plan (and holds the one description of each action every format
uses), ``reports`` what an apply did, ``drift`` what changed by hand.
"""

from reconciler.render.drift import DRIFT_MARKER, drift, drift_line, drift_parts, unmanaged
from reconciler.render.plans import (
    LOUD,
    MARKDOWN_LIMIT,
    MARKER,
    WARNED,
    bounded,
    by_trunk,
    describe,
    escape,
    json_text,
    markdown,
    no_changes,
    summary,
    text,
    what,
)
from reconciler.render.reports import report

__all__ = [
    "DRIFT_MARKER",
    "LOUD",
    "MARKDOWN_LIMIT",
    "MARKER",
    "WARNED",
    "bounded",
    "by_trunk",
    "describe",
    "drift",
    "drift_line",
    "drift_parts",
    "escape",
    "json_text",
    "markdown",
    "no_changes",
    "report",
    "summary",
    "text",
    "unmanaged",
    "what",
]
