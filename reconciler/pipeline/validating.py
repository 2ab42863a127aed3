"""``reconciler validate``: a manifest folder, or some of its files, and the ledgers.

Called by the CLI. Manifests alone are ``manifests.load``'s; this adds what needs the
files around them:

* a single file (as a pre-commit hook passes the changed ones) is checked with its
  folder, the nearest one up that declares accounts, since the accounts its trunks name
  are declared elsewhere; only the named files' problems are reported;
* each account's ledger must parse (a ledger with merge-conflict markers fails here, not
  at the next plan).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from reconciler.errors import LedgerError
from reconciler.live import ledger as ledgers
from reconciler.manifests.load import Manifests, load
from reconciler.manifests.problems import Problem, Severity


def _folder_of(files: Sequence[Path]) -> Path:
    """The nearest folder above the files that declares accounts, or their own. The search
    stays inside the git work tree the files are in (a pre-commit hook's repository), and
    outside one it looks at the files' own folder only: never at whatever lies above."""
    common = files[0].resolve().parent
    for file in files[1:]:
        while not file.resolve().is_relative_to(common):
            common = common.parent
    # The work tree's top, or the files' own folder when they are in none.
    top = next((f for f in [common, *common.parents] if (f / ".git").exists()), common)
    for folder in [common, *common.parents]:
        if load(folder).accounts:
            return folder
        if folder == top:
            break
    return common


def validate(paths: Sequence[str]) -> Manifests:
    named = [Path(p) for p in paths]
    if len(named) == 1 and not named[0].is_file():
        manifests = load(named[0])
    else:
        manifests = load(_folder_of(named))
        wanted = {file.resolve() for file in named}
        kept = [p for p in manifests.problems if Path(p.file).resolve() in wanted]
        manifests = replace(manifests, problems=tuple(kept))
    found = list(manifests.problems)
    for account in manifests.accounts.values():
        try:
            path = ledgers.ledger_path(manifests.root, account)
            ledgers.read(path, account=account.name, account_sid=account.spec.sid)
        except LedgerError as error:
            found.append(Problem(str(path), 0, 0, Severity.ERROR, "", str(error)))
    return replace(manifests, problems=tuple(sorted(found)))
