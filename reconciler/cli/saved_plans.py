"""Saved plans on disk: ``plan --out FILE`` writes one, ``apply --plan FILE`` reads them.

Called by the CLI only. Writing adds where the plan was made (on GitHub Actions: the
repository, the workflow's commit, the run and the pull request, from the runner's own
variables and event file) and, when ``RECONCILER_PLAN_KEY`` is set, a signature over the
whole document (``reconciler.plan.signing``). Reading refuses (exit 3), before anything
else happens, a plan that was edited, is unsigned while a key is set, or was signed with
another key. The file is written atomically: a full disk leaves no half a plan.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reconciler.cli import github
from reconciler.errors import ConfigError, Refused
from reconciler.plan import signing

KEY = "RECONCILER_PLAN_KEY"


def plan_key(environ: Mapping[str, str]) -> str | None:
    """The plan key, None when the variable is not set at all. Set but empty is an error:
    in a workflow it means the secret is missing from the job's environment, and going on
    unsigned (or unchecked) would be a silent downgrade."""
    if KEY not in environ:
        return None
    key = environ[KEY]
    if not key:
        raise ConfigError(
            f"{KEY} is set but empty: the secret is missing where this job runs (add it to "
            "the environment the job names; docs/gitops.md), or unset the variable"
        )
    problem = signing.key_problem(key)
    if problem:
        raise ConfigError(f"{KEY} {problem}")
    return key


def write(document: Mapping[str, Any], path: Path, environ: Mapping[str, str]) -> None:
    key = plan_key(environ)
    source = github.provenance(environ)
    full: dict[str, Any] = {**document, **({"source": source} if source else {})}
    if key is not None:
        full = signing.sign(full, key)
    text = json.dumps(full, indent=2) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        try:
            with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
                handle.write(text)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as error:
        raise ConfigError(f"cannot write the plan to {path}: {error.strerror or error}") from None


def read(files: list[str], environ: Mapping[str, str]) -> list[dict[str, Any]]:
    """Every saved plan, each verified; the first that fails refuses the apply."""
    key = plan_key(environ) if files else None
    documents = []
    for file in files:
        try:
            document = json.loads(Path(file).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConfigError(f"cannot read the saved plan {file}: {exc}") from exc
        if not isinstance(document, dict):
            raise Refused(f"{file} is not a plan from `reconciler plan --out` (nothing applied)")
        verdict = signing.verify(document, name=file, key=key)
        if not verdict.accepted:
            raise Refused(f"{verdict.message}. Nothing was applied.")
        documents.append(document)
    return documents
