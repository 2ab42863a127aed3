"""The ledgers kept on a git branch of their own: ``reconciler state pull`` and ``push``.

Called by the CLI, in the GitOps workflows and by people. Why a branch: the ledger must
survive a protected ``main`` (rulesets that require pull requests or checks refuse a
bot's push, GH006) and concurrent applies of different accounts. So ledgers live on a
dedicated branch (``reconciler-state`` by default) at the same paths as in the working
tree (``manifests/state/prod.json``), and nothing else does: no journal, no lock.

``push`` is a compare-and-swap: it builds a commit whose parent is the branch tip it
fetched, replacing only the chosen accounts' files in that tip's tree, and pushes it
without force. If another run moved the branch in between, git refuses the push (not a
fast-forward); it fetches the new tip and tries again, so two runs never lose each
other's ledgers. ``pull`` copies the branch's ledgers into the working tree, checking
each one parses before it replaces anything.

Plumbing only (``hash-object``, a temporary index, ``write-tree``, ``commit-tree``): the
working tree, the real index and the checked-out branch are never touched.
"""

from __future__ import annotations

import base64
import random
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import ConfigError, LedgerError, ManifestError
from reconciler.live import ledger as ledgers
from reconciler.live.files import write_atomically
from reconciler.manifests.declared import NamedAccount
from reconciler.manifests.load import Manifests
from reconciler.pipeline import state_signing as signing
from reconciler.pipeline.accounts import select

DEFAULT_BRANCH = "reconciler-state"
DEFAULT_REMOTE = "origin"
APPLIED = ".applied"  # beside a ledger on the branch: the manifests' commit last applied
CHECKED = ".checked.json"  # beside a ledger: when drift last checked each trunk
# Whose name a commit carries when git has none configured (a CI runner).
IDENTITY = {
    "GIT_AUTHOR_NAME": "reconciler",
    "GIT_AUTHOR_EMAIL": "reconciler@users.noreply.github.com",
    "GIT_COMMITTER_NAME": "reconciler",
    "GIT_COMMITTER_EMAIL": "reconciler@users.noreply.github.com",
}


class GitError(ConfigError):
    pass


def token_config(environ: Mapping[str, str]) -> dict[str, str]:
    """Git configuration, as ``GIT_CONFIG_*`` variables, that sends the job's token
    (``GH_TOKEN``) to ``GITHUB_SERVER_URL`` and nowhere else: the extra header is keyed by
    that URL, so git adds it only to requests under it. Nothing is written to a
    ``.git/config``, so no later step or artifact can read the token from there."""
    token, server = environ.get("GH_TOKEN", ""), environ.get("GITHUB_SERVER_URL", "")
    if not token or not server.startswith(("https://", "http://")):
        return {}
    basic = base64.b64encode(f"x-access-token:{token}".encode()).decode()
    header = {f"http.{server.rstrip('/')}/.extraheader": f"AUTHORIZATION: basic {basic}"}
    return signing.config(environ, header)


@dataclass(frozen=True)
class Git:
    root: Path
    environ: Mapping[str, str]

    @classmethod
    def around(cls, path: Path, environ: Mapping[str, str]) -> Git:
        folder = path if path.is_dir() else path.parent
        found = _run(["git", "rev-parse", "--show-toplevel"], folder, environ, check=False)
        if found.returncode != 0:
            raise GitError(f"{folder} is not inside a git repository: {found.stderr.strip()}")
        return cls(Path(found.stdout.strip()), {**environ, **token_config(environ)})

    def __call__(
        self,
        *args: str,
        check: bool = True,
        extra: Mapping[str, str] | None = None,
        input_text: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        environ = {**self.environ, **(extra or {})}
        return _run(["git", *args], self.root, environ, check=check, input_text=input_text)


def _run(
    command: list[str],
    cwd: Path,
    environ: Mapping[str, str],
    *,
    check: bool,
    input_text: str | None = None,
) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(  # noqa: S603 (git, with arguments we build)
        command,
        cwd=cwd,
        env=dict(environ),
        input=input_text,
        capture_output=True,
        text=True,
        check=False,
    )
    if check and result.returncode != 0:
        raise GitError(f"{' '.join(command[:3])} failed: {result.stderr.strip()}")
    return result


@dataclass(frozen=True)
class Guard:
    """Who may write the branch (state_signing): the signers file (None: the
    repository's own, when it has one), whether one is required, and the SSH host keys a
    push over SSH trusts (None: the user's own known_hosts)."""

    signers: str | None = None
    required: bool = False
    known_hosts: Path | None = None

    def settle(self, root: Path, environ: Mapping[str, str]) -> signing.Trust:
        return signing.settle(root, environ, signers=self.signers, require=self.required)


@dataclass(frozen=True)
class Moved:
    account: str
    path: str  # relative to the repository's root
    outcome: str  # what happened, in words


def _ledgers(git: Git, manifests: Manifests, accounts: Sequence[NamedAccount]) -> list[Path]:
    paths = [ledgers.ledger_path(manifests.root, account) for account in accounts]
    return [path.resolve().relative_to(git.root.resolve()) for path in paths]


def _chosen(
    manifests: Manifests, accounts: Sequence[str], shard: tuple[int, int] | None = None
) -> list[NamedAccount]:
    """The accounts to work on; the manifests must load, and declare at least one (a
    shard may hold none: nothing to move)."""
    if manifests.errors:
        raise ManifestError(manifests.errors)
    chosen = select(manifests, accounts, shard)
    if not chosen and shard is None:
        raise ConfigError(f"{manifests.root} declares no account: no ledger to move")
    return chosen


def paths(manifests: Manifests, *, accounts: Sequence[str]) -> list[Path]:
    """Where each chosen account's ledger is, in the working tree."""
    return [ledgers.ledger_path(manifests.root, a) for a in _chosen(manifests, accounts)]


def _fetch(
    git: Git, remote: str, branch: str, extra: Mapping[str, str] | None = None
) -> str | None:
    """The branch's tip on the remote, fetched; None when the branch does not exist yet.
    ``remote`` is a remote's name or a URL (a workflow names the base repository by URL):
    the tip is read from ``FETCH_HEAD``, so no tracking ref is named after it."""
    listed = git("ls-remote", "--heads", remote, f"refs/heads/{branch}", extra=extra)
    if not listed.stdout.strip():
        return None
    git("fetch", "--quiet", "--no-tags", remote, f"refs/heads/{branch}", extra=extra)
    return git("rev-parse", "FETCH_HEAD").stdout.strip()


def pull(
    manifests: Manifests,
    *,
    accounts: Sequence[str],
    environ: Mapping[str, str],
    branch: str = DEFAULT_BRANCH,
    remote: str = DEFAULT_REMOTE,
    force: bool = False,
    guard: Guard | None = None,
    shard: tuple[int, int] | None = None,
) -> list[Moved]:
    """Copy the chosen accounts' ledgers from the branch into the working tree. A local
    ledger that differs from the branch's (an apply or import not pushed yet) is never
    overwritten unless ``force``: it may be the only record of trunks just created. With
    a signers file (``guard``'s, or the repository's own), nothing is taken from a tip
    that is not signed by a listed key."""
    chosen = _chosen(manifests, accounts, shard)
    if not chosen:
        return []
    git = Git.around(Path(manifests.root), environ)
    _branch_name(git, branch)
    trust = (guard or Guard()).settle(git.root, environ)
    tip = _fetch(git, remote, branch)
    if tip is not None:
        signing.verified(git, tip, trust, f"{remote}/{branch}")
    relatives = _ledgers(git, manifests, chosen)
    if tip is not None and not force:
        for account, relative in zip(chosen, relatives, strict=True):
            local = git.root / relative
            shown = git("show", f"{tip}:{relative.as_posix()}", check=False)
            differs = local.exists() and local.read_text(encoding="utf-8") != shown.stdout
            if shown.returncode == 0 and differs:
                raise LedgerError(
                    f"the ledger of {account.name} here ({relative}) differs from "
                    f"{branch}'s: push it first (reconciler state push --account "
                    f"{account.name}), or pass --force to replace it with the branch's"
                )
    moved = []
    for account, relative in zip(chosen, relatives, strict=True):
        if tip is None:
            here = (git.root / relative).exists()
            said = "kept" if here else "no ledger here either (the first apply makes one)"
            moved.append(Moved(account.name, str(relative), f"no branch {branch} yet: {said}"))
            continue
        shown = git("show", f"{tip}:{relative.as_posix()}", check=False)
        if shown.returncode != 0:
            moved.append(Moved(account.name, str(relative), f"not on {branch}: kept"))
            continue
        target = git.root / relative
        _check_ledger(shown.stdout, account, f"{branch}:{relative.as_posix()}")
        target.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(target, shown.stdout, what="ledger")
        for companion in (APPLIED, CHECKED):
            kept = git("show", f"{tip}:{relative.as_posix()}{companion}", check=False)
            if kept.returncode == 0:
                write_atomically(
                    target.with_name(target.name + companion), kept.stdout, what="ledger companion"
                )
        moved.append(Moved(account.name, str(relative), f"taken from {branch} at {tip[:12]}"))
    return moved


def _said(accounts: Sequence[NamedAccount], paths: Sequence[Path], outcome: str) -> list[Moved]:
    return [Moved(a.name, str(p), outcome) for a, p in zip(accounts, paths, strict=True)]


def _check_ledger(text: str, account: NamedAccount, where: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        probe = Path(folder) / "ledger.json"
        probe.write_text(text, encoding="utf-8")
        try:
            ledgers.read(probe, account=account.name, account_sid=account.spec.sid)
        except LedgerError as error:
            said = str(error).replace(f"ledger {probe} ", "").replace(str(probe), where)
            said = said.replace(ledgers.RESTORE, "restore it from an earlier commit")
            raise LedgerError(f"{where}: {said}") from None


def push(
    manifests: Manifests,
    *,
    accounts: Sequence[str],
    environ: Mapping[str, str],
    message: str,
    branch: str = DEFAULT_BRANCH,
    remote: str = DEFAULT_REMOTE,
    attempts: int = 5,
    applied: str | None = None,
    source: Path | None = None,
    checked: bool = False,
    guard: Guard | None = None,
    shard: tuple[int, int] | None = None,
) -> list[Moved]:
    """Commit the chosen accounts' ledgers onto the branch, compare-and-swap; with
    ``applied``, also the commit of the manifests they were applied from (beside each
    ledger, ``<ledger>.applied``), which the apply workflow reads to know which merged
    pull requests' plans it carries. ``source``: read the ledgers from this folder (laid
    out as the repository is, as a workflow's artifact is) instead of the working tree.
    ``checked``: push drift's records of when each trunk was checked, not the ledgers
    (a drift run must never put back a ledger an apply has moved on from).

    With a signers file, the commit is signed with the state key, and a tip that does not
    verify is never built on."""
    chosen = _chosen(manifests, accounts, shard)
    if not chosen:
        return []
    git = Git.around(Path(manifests.root), environ)
    _branch_name(git, branch)
    guard = guard or Guard()
    trust = guard.settle(git.root, environ)
    relatives = _ledgers(git, manifests, chosen)
    skipped: list[Moved] = []
    if checked:
        relatives = [r.with_name(r.name + CHECKED) for r in relatives]
        # Only the accounts a drift job checked: the others keep the branch's records.
        kept = [(source or git.root) / r for r in relatives]
        skipped = _said(
            [a for a, k in zip(chosen, kept, strict=True) if not k.exists()],
            [r for r, k in zip(relatives, kept, strict=True) if not k.exists()],
            "no record from this run (not checked): left as the branch has it",
        )
        chosen = [a for a, k in zip(chosen, kept, strict=True) if k.exists()]
        relatives = [r for r, k in zip(relatives, kept, strict=True) if k.exists()]
        if not chosen:
            return skipped
    blobs, files, applied = _content(
        git, chosen, relatives, source=source, checked=checked, applied=applied
    )
    again = " ".join(f"--account {a.name}" for a in chosen)
    again += f" --from {source}" if source else ""
    again += f" --applied {applied}" if applied else ""
    again += " --checked" if checked else ""
    again += f" --branch {branch}" if branch != DEFAULT_BRANCH else ""
    again += f" --remote {remote}" if remote != DEFAULT_REMOTE else ""
    where = f"in {source}" if source else "in the working tree"
    recovery = (
        f"The ledger is safe {where} ({', '.join(str(r) for r in relatives)}); "
        f"push it with: reconciler state push {again}"
    )
    identity = {key: value for key, value in IDENTITY.items() if key not in environ}
    with signing.signing(trust, guard.known_hosts, git.environ) as signed:
        for attempt in range(1, attempts + 1):
            try:
                tip = _fetch(git, remote, branch, signed)
            except GitError as error:
                said = str(error).rstrip(". ")
                raise LedgerError(f"cannot reach {remote}: {said}. {recovery}") from None
            if tip is not None:
                signing.verified(git, tip, trust, f"{remote}/{branch}")
            tree = _tree(git, tip, blobs, files)
            if tip is not None and tree == git("rev-parse", f"{tip}^{{tree}}").stdout.strip():
                return skipped + _said(chosen, relatives, f"unchanged on {branch}")
            commit = _commit(
                git, tree, tip=tip, message=message, extra={**identity, **signed}, trust=trust
            )
            pushed = _push(git, remote, commit, branch, signed)
            if pushed.returncode == 0:
                return skipped + _said(chosen, relatives, f"pushed to {branch} as {commit[:12]}")
            if attempt < attempts:  # another run moved the branch: build on its tip instead
                time.sleep(random.uniform(0.2, 1.0) * attempt)
    raise LedgerError(
        f"could not push the ledger to {remote}/{branch} after {attempts} attempts "
        f"({pushed.stderr.strip()}). {recovery}"
    )


def _content(
    git: Git,
    chosen: Sequence[NamedAccount],
    relatives: Sequence[Path],
    *,
    source: Path | None,
    checked: bool,
    applied: str | None,
) -> tuple[list[str], list[str], str | None]:
    """The blobs to write and their paths on the branch, each ledger checked first; with
    ``applied``, its marker too (the commit resolved to its full SHA, also returned)."""
    blobs = []
    for account, relative in zip(chosen, relatives, strict=True):
        path = (source or git.root) / relative
        if not path.exists():
            raise LedgerError(f"account {account.name} has no {path}: nothing to push")
        if not checked:
            _check_ledger(path.read_text(encoding="utf-8"), account, str(path))
        blobs.append(git("hash-object", "-w", "--", str(path)).stdout.strip())
    files = [relative.as_posix() for relative in relatives]
    if applied is not None:
        named = git("rev-parse", "--verify", "--quiet", f"{applied}^{{commit}}", check=False)
        if named.returncode:
            raise ConfigError(f"--applied {applied}: no such commit in this repository")
        applied = named.stdout.strip()  # the full SHA, never HEAD or a branch's name
        marker = git("hash-object", "-w", "--stdin", input_text=applied + "\n").stdout.strip()
        blobs += [marker] * len(relatives)
        files += [f"{relative.as_posix()}{APPLIED}" for relative in relatives]
    return blobs, files, applied


def _tree(git: Git, tip: str | None, blobs: Sequence[str], files: Sequence[str]) -> str:
    """The tip's tree with ``files`` replaced by ``blobs``, built in a temporary index."""
    with tempfile.TemporaryDirectory() as folder:
        index = {"GIT_INDEX_FILE": str(Path(folder) / "index")}
        git("read-tree", *([tip] if tip else ["--empty"]), extra=index)
        for blob, file in zip(blobs, files, strict=True):
            git("update-index", "--add", "--cacheinfo", f"100644,{blob},{file}", extra=index)
        return git("write-tree", extra=index).stdout.strip()


def _commit(
    git: Git,
    tree: str,
    *,
    tip: str | None,
    message: str,
    extra: Mapping[str, str],
    trust: signing.Trust,
) -> str:
    """A commit of ``tree`` on ``tip``, signed with the state key when there is one."""
    parents = ["-p", tip] if tip else []
    sign = ["-S"] if trust.key is not None else []
    return git("commit-tree", *sign, tree, *parents, "-m", message, extra=extra).stdout.strip()


def _push(
    git: Git, remote: str, commit: str, branch: str, extra: Mapping[str, str]
) -> subprocess.CompletedProcess[str]:
    """Push ``commit`` as the branch, never forced: git refuses it if the tip moved."""
    target = f"{commit}:refs/heads/{branch}"
    return git("push", "--quiet", remote, target, check=False, extra=extra)


def sign(
    manifests: Manifests,
    *,
    environ: Mapping[str, str],
    tip: str,
    branch: str = DEFAULT_BRANCH,
    remote: str = DEFAULT_REMOTE,
    guard: Guard | None = None,
) -> list[Moved]:
    """Vouch for the branch as it is: a signed commit of its tip's tree on that tip. Run
    once, when turning signing on for a branch made before, by someone who checked it at
    ``tip`` (the commit they name: the signature covers nothing newer). Refused when the
    tip verifies already, moved since, or holds a ledger that does not read."""
    chosen = _chosen(manifests, [])
    git = Git.around(Path(manifests.root), environ)
    _branch_name(git, branch)
    guard = guard or Guard()
    trust = guard.settle(git.root, environ)
    if trust.key is None:
        raise ConfigError(f"set {signing.KEY_VARIABLE} to the state key to sign the branch")
    identity = {key: value for key, value in IDENTITY.items() if key not in environ}
    with signing.signing(trust, guard.known_hosts, git.environ) as signed:
        found = _fetch(git, remote, branch, signed)
        if found is None:
            raise ConfigError(f"{remote} has no branch {branch}: nothing to sign (a push signs)")
        if not found.startswith(tip.lower()) or len(tip) < 7:
            raise ConfigError(
                f"{remote}/{branch} is at {found[:12]}, not {tip}: check that commit, then "
                f"name it (--tip {found[:12]})"
            )
        try:
            signing.verified(git, found, trust, f"{remote}/{branch}")
        except LedgerError:
            pass
        else:
            raise ConfigError(f"{remote}/{branch} at {found[:12]} is signed already: nothing to do")
        moved = []
        for account, relative in zip(chosen, _ledgers(git, manifests, chosen), strict=True):
            shown = git("show", f"{found}:{relative.as_posix()}", check=False)
            if shown.returncode == 0:
                _check_ledger(shown.stdout, account, f"{branch}:{relative.as_posix()}")
                moved.append(Moved(account.name, str(relative), f"vouched for at {found[:12]}"))
        tree = git("rev-parse", f"{found}^{{tree}}").stdout.strip()
        message = f"reconciler: state branch vouched for at {found[:12]}"
        commit = _commit(
            git, tree, tip=found, message=message, extra={**identity, **signed}, trust=trust
        )
        pushed = _push(git, remote, commit, branch, signed)
    if pushed.returncode != 0:
        raise LedgerError(f"could not push to {remote}/{branch}: {pushed.stderr.strip()}")
    return moved


def _branch_name(git: Git, branch: str) -> None:
    if git("check-ref-format", "--branch", branch, check=False).returncode:
        raise ConfigError(f"--branch {branch!r} is not a valid branch name")
