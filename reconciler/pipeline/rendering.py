"""``reconciler render-partner``: the partner end of trunks, rendered into files.

Called by the CLI with the loaded manifests. Chooses the partners to render (those of
the trunks ``--account``, ``--trunk`` and ``--partner`` leave), renders each one's files
with ``partners`` (pure) for *all* of its trunks, so that no file is ever partial; then
compares them with an output folder (one subfolder per partner), writes them there, each
through the one atomic write (``live.files``), and removes what a partner no longer has.

Only files that carry the rendered header (``partners.MARKER``) are ever removed: inside
a chosen partner's folder, or, when nothing narrows the run, in any other subfolder of
the output folder (a partner since removed from the manifests) where a platform would
have written them (``partners.files``), so that even ``--output .`` never reaches a
generated file elsewhere, such as a test's golden copy. A trunk
that cannot be rendered (no partner, or a LiveKit one) is reported, never skipped in
silence; naming it with ``--trunk`` is an error.

A manifest file given as PATH is read alone, as ``load`` reads a file path for every
command but ``validate``: when it names accounts or partners it does not declare, the
error says so, and which file of the folder around it declares them.
"""

from __future__ import annotations

import contextlib
import difflib
import os
import shlex
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from reconciler import partners
from reconciler.errors import ConfigError, ManifestError
from reconciler.live.files import write_atomically
from reconciler.manifests import seam
from reconciler.manifests.declared import Declared, NamedAccount
from reconciler.manifests.load import Manifests, load
from reconciler.manifests.models import NO_PARTNER, TrunkSpec
from reconciler.manifests.problems import did_you_mean
from reconciler.pipeline.accounts import select

HEAD = 512  # bytes of a file read to find the rendered header


@dataclass(frozen=True)
class Selection:
    """What the options narrow the run to (empty: everything)."""

    accounts: tuple[str, ...] = ()
    trunks: tuple[str, ...] = ()
    partners: tuple[str, ...] = ()

    @property
    def narrowed(self) -> bool:
        return bool(self.accounts or self.trunks or self.partners)


@dataclass(frozen=True)
class Unrendered:
    """A chosen trunk that has no files, and why."""

    account: str
    trunk: str
    reason: str


@dataclass(frozen=True)
class Rendered:
    """What one run renders: each chosen partner's files, the chosen trunks it cannot
    render, and the partner folders it answers for."""

    renderings: tuple[partners.Rendering, ...]
    unrendered: tuple[Unrendered, ...]
    folders: tuple[str, ...]  # partner folders to look in for files no longer rendered
    everywhere: bool  # nothing narrowed the run: every subfolder of the output is its own


class Status(StrEnum):
    NEW = "new"
    CHANGED = "changed"
    SAME = "unchanged"
    STALE = "no longer rendered"


@dataclass(frozen=True)
class FileChange:
    """One file of the output folder: what it holds, and what it should hold."""

    path: str  # inside the output folder, <partner>/<file>
    status: Status
    before: str | None  # what the folder holds (None: nothing)
    after: str | None  # what is rendered (None: nothing, a file to remove)


def render(manifests: Manifests, selection: Selection) -> Rendered:
    """The chosen partners' files; ``ConfigError`` for a name that is none of the
    manifests', or a trunk named with ``--trunk`` that cannot be rendered."""
    if manifests.errors:
        _read_alone(manifests)
        raise ManifestError(manifests.errors)
    accounts = {account.name for account in select(manifests, selection.accounts)}
    named = _named_partners(manifests, selection.partners)
    trunks = [t for t in manifests.trunks if t.spec.account in accounts]
    _known_trunks(trunks, selection.trunks, accounts if selection.accounts else None)
    if selection.trunks:
        trunks = [t for t in trunks if t.spec.name in selection.trunks]
    chosen: set[str] = set()
    unrendered = []
    for trunk in trunks:
        spec = trunk.spec
        account = manifests.accounts.get(spec.account)
        partner = seam.partner_name(spec, account)
        reason = _unrenderable(manifests, spec, account, partner)
        if reason is not None:
            if not named or selection.trunks:  # --partner alone: other trunks are not asked for
                unrendered.append(Unrendered(spec.account, spec.name, reason))
        elif partner is not None and (not named or partner in named):
            chosen.add(partner)
    if selection.trunks and unrendered:
        raise ConfigError(
            "; ".join(f"--trunk {u.trunk} (account {u.account}): {u.reason}" for u in unrendered)
        )
    every = seam.ends(
        manifests.accounts,
        manifests.partners,
        [t.spec for t in manifests.trunks],
        [r.spec for r in manifests.routes],
    )
    renderings = []
    for name in sorted(chosen):
        ends = [end for end in every if end.partner == name]
        platform = manifests.partners[name].spec.platform
        renderings.append(partners.render(name, platform, ends, _sources(manifests, name, ends)))
    folders = sorted(chosen | set(named))
    return Rendered(tuple(renderings), tuple(unrendered), tuple(folders), not selection.narrowed)


def _named_partners(manifests: Manifests, names: Sequence[str]) -> list[str]:
    for name in names:
        found = manifests.partners.get(name)
        if found is None:
            declared = ", ".join(sorted(manifests.partners)) or "none"
            hint = did_you_mean(name, manifests.partners)
            raise ConfigError(f"--partner {name}: no such partner{hint} (declared: {declared})")
        if found.spec.platform not in partners.RENDERED:
            raise ConfigError(f"--partner {name}: {_livekit(name)}")
    return list(dict.fromkeys(names))


def _known_trunks(
    trunks: Sequence[Declared[TrunkSpec]], names: Sequence[str], accounts: set[str] | None
) -> None:
    """Each ``--trunk`` must be a trunk of the chosen accounts: a typo is an error, never
    an empty run."""
    declared = {t.spec.name for t in trunks}
    unknown = [name for name in dict.fromkeys(names) if name not in declared]
    if unknown:
        if not accounts:
            where = "the manifests declare"
        elif len(accounts) == 1:
            where = f"account {next(iter(accounts))} declares"
        else:
            where = f"accounts {', '.join(sorted(accounts))} declare"
        hints = "".join(did_you_mean(name, declared) for name in unknown)
        listed = ", ".join(sorted(declared)) or "none"
        raise ConfigError(
            f"--trunk {', '.join(unknown)}: {where} no such trunk{hints} (trunks: {listed})"
        )


def _livekit(name: str) -> str:
    return (
        f"partner {name} is livekit, whose end plan and apply configure through LiveKit's "
        f"API; render-partner writes the files of {_listed(partners.RENDERED)} partners"
    )


def _listed(words: Sequence[str]) -> str:
    return f"{', '.join(words[:-1])} and {words[-1]}" if len(words) > 1 else "".join(words)


def _no_partner(spec: TrunkSpec, account: NamedAccount | None) -> str:
    """Why a trunk has no partner: its own ``partner: none``, its account's, or neither
    naming one."""
    if spec.partner is not None:  # its own partner: none
        return f"partner: {NO_PARTNER}"
    if account is not None and account.spec.partner == NO_PARTNER:
        return f"partner: {NO_PARTNER} (its account {account.name}'s)"
    return "no partner (name one with partner:, on the trunk or its account)"


def _unrenderable(
    manifests: Manifests, spec: TrunkSpec, account: NamedAccount | None, partner: str | None
) -> str | None:
    """Why a trunk's partner end cannot be rendered, or None when it can."""
    if partner is None:
        return _no_partner(spec, account)
    found = manifests.partners.get(partner)
    if found is None:  # the manifests' own error, reported by load
        return f"partner {partner} is not declared"
    if found.spec.platform not in partners.RENDERED:
        return _livekit(partner)
    return None


def _read_alone(manifests: Manifests) -> None:
    """``ConfigError`` when PATH is one manifest file (read alone: a file path loads only
    that file) naming accounts or partners that it does not declare and that the folder
    around it does: says so, and where, rather than "unknown account". When no folder
    declares them either, the manifests' own errors say what is unknown, line by line."""
    given = Path(manifests.root)
    missing = _undeclared(manifests)
    if not given.is_file() or not missing:
        return
    found = _declared_around(given, missing)
    if found is None:
        return
    folder, declared = found
    one = len(missing) == 1
    files = sorted({declared[item] for item in missing})
    raise ConfigError(
        f"{given} names {_kinds(missing)}, which it does not declare: render-partner reads "
        f"only the file it is given, as plan and apply do; {_listed(files)} "
        f"{'declares' if len(files) == 1 else 'declare'} {'it' if one else 'them'}. Give the "
        f"folder as PATH instead (reconciler render-partner {shlex.quote(folder)}); --account, "
        "--trunk and --partner choose what is rendered"
    )


def _kinds(items: Sequence[tuple[str, str]]) -> str:
    """(kind, name) pairs in words: ``accounts prod and mumbai, and partner blr_kamailio``."""
    said = []
    for kind in dict.fromkeys(kind for kind, _ in items):
        names = [name for k, name in items if k == kind]
        said.append(f"{kind}{'s' if len(names) > 1 else ''} {_listed(names)}")
    return ", and ".join(said)


def _declared_around(
    given: Path, missing: Sequence[tuple[str, str]]
) -> tuple[str, dict[tuple[str, str], str]] | None:
    """The nearest folder above ``given`` that declares every one of ``missing`` (as
    ``validate`` looks for a file's accounts: inside the git work tree, or the file's own
    folder outside one), shown relative to the current directory, and the file declaring
    each (kind, name); None when there is none."""
    here = given.resolve().parent
    top = next((f for f in [here, *here.parents] if (f / ".git").exists()), here)
    for folder in [here, *here.parents]:
        around = load(folder)
        declared = {("account", n): a.origin.file for n, a in around.accounts.items()}
        declared |= {("partner", n): p.origin.file for n, p in around.partners.items()}
        if all(item in declared for item in missing):
            shown = {item: os.path.relpath(file) for item, file in declared.items()}
            return os.path.relpath(folder), shown
        if folder == top:
            break
    return None


def _undeclared(manifests: Manifests) -> list[tuple[str, str]]:
    """The accounts and partners the manifests name but do not declare, as (kind, name),
    in the order they are first named."""
    found: dict[tuple[str, str], None] = {}
    for trunk in manifests.trunks:
        spec = trunk.spec
        if spec.account not in manifests.accounts:
            found["account", spec.account] = None
        partner = seam.partner_name(spec, manifests.accounts.get(spec.account))
        if partner is not None and partner not in manifests.partners:
            found["partner", partner] = None
    for route in manifests.routes:
        if route.spec.account not in manifests.accounts:
            found["account", route.spec.account] = None
    for account in manifests.accounts.values():
        default = account.spec.partner
        if default not in (None, NO_PARTNER) and default not in manifests.partners:
            found["partner", default] = None
    return list(found)


def _sources(manifests: Manifests, partner: str, ends: Sequence[seam.End]) -> list[str]:
    """The manifest files a partner's files come from: its declaration, its trunks,
    their accounts, and the routes that send those trunks headers."""
    trunks = {(end.account, end.trunk) for end in ends}
    files = {manifests.partners[partner].origin.file}
    for trunk in manifests.trunks:
        if (trunk.spec.account, trunk.spec.name) in trunks:
            files.add(trunk.origin.file)
            files.add(manifests.accounts[trunk.spec.account].origin.file)
    for route in manifests.routes:
        for _, target in route.spec.targets():
            if (route.spec.account, target.trunk) in trunks and target.custom_params:
                files.add(route.origin.file)
    return sorted(_relative(manifests.root, file) for file in files)


def _relative(root: str, file: str) -> str:
    """A manifest file as the repository knows it: relative to the manifests' root, so
    the header is the same wherever the command runs from."""
    base = Path(root)
    path = Path(file)
    if base.is_file():
        return path.name
    with contextlib.suppress(ValueError):
        return path.relative_to(base).as_posix()
    return path.as_posix()


# -- the output folder -----------------------------------------------------------------------


def compare(rendered: Rendered, output: Path) -> list[FileChange]:
    """Each rendered file against the output folder, then the files it holds that are no
    longer rendered (only those with the rendered header)."""
    if output.exists() and not output.is_dir():
        raise ConfigError(f"--output {output}: not a folder")
    changes = []
    wanted: set[str] = set()
    for rendering in rendered.renderings:
        for name, text in rendering.files.items():
            path = f"{rendering.partner}/{name}"
            wanted.add(path)
            before = _read(output / path)
            status = (
                Status.NEW
                if before is None
                else (Status.SAME if before == text else Status.CHANGED)
            )
            changes.append(FileChange(path, status, before, text))
    own = set(rendered.folders)
    others: set[str] = set()
    if rendered.everywhere and output.is_dir():
        others = {
            entry.name
            for entry in output.iterdir()
            if entry.is_dir() and not entry.name.startswith(".")  # never .git or .venv
        } - own
    stale = [file for folder in sorted(own) for file in _files(output / folder)]
    # A folder of a partner no longer declared: only the names a renderer writes (it
    # could be any folder of the output, so none is walked).
    for folder in sorted(others):
        for name in sorted(partners.files()):
            file = output / folder / name
            if file.is_file() and not file.is_symlink():
                stale.append(file)
    for file in stale:
        path = file.relative_to(output).as_posix()
        if path not in wanted and _generated(file):
            changes.append(FileChange(path, Status.STALE, _read(file), None))
    return changes


def _files(folder: Path) -> Iterable[Path]:
    """The files under ``folder`` (none if it is absent), leaving out hidden ones (an
    atomic write's temporary file) and links."""
    if not folder.is_dir() or folder.is_symlink():
        return []
    found = []
    for where, folders, names in os.walk(folder):
        folders[:] = sorted(f for f in folders if not f.startswith("."))
        here = Path(where)
        found += [
            here / name
            for name in sorted(names)
            if not name.startswith(".")
            and (here / name).is_file()
            and not (here / name).is_symlink()
        ]
    return found


def _read(path: Path) -> str | None:
    if not path.is_file():
        return None
    try:
        return path.read_bytes().decode("utf-8", errors="replace")
    except OSError as error:
        raise ConfigError(f"cannot read {path}: {error.strerror or error}") from None


def _generated(path: Path) -> bool:
    try:
        with path.open("rb") as handle:
            head = handle.read(HEAD)
    except OSError:
        return False
    return partners.MARKER.encode() in head


def write(changes: Sequence[FileChange], output: Path) -> None:
    """Make the output folder what was rendered: new and changed files written
    atomically, files no longer rendered removed, and folders they leave empty."""
    for change in changes:
        path = output / change.path
        if change.status in (Status.NEW, Status.CHANGED) and change.after is not None:
            write_atomically(path, change.after, what="partner configuration")
        elif change.status is Status.STALE:
            try:
                path.unlink()
            except FileNotFoundError:
                pass
            except OSError as error:
                raise ConfigError(f"cannot remove {path}: {error.strerror or error}") from None
            _prune(path.parent, output)


def _prune(folder: Path, output: Path) -> None:
    """Remove ``folder`` and the folders above it, up to ``output``, while empty."""
    while folder != output and output in folder.parents:
        try:
            folder.rmdir()
        except OSError:  # not empty, or not ours to remove
            return
        folder = folder.parent


def diff(change: FileChange, output: str) -> str:
    """A change as a unified diff, the output folder's file against the rendered one."""
    name = f"{output.rstrip('/')}/{change.path}"
    lines = difflib.unified_diff(
        (change.before or "").splitlines(keepends=True),
        (change.after or "").splitlines(keepends=True),
        fromfile=f"{name} (in the folder)" if change.before is not None else "/dev/null",
        tofile=f"{name} (rendered)" if change.after is not None else "/dev/null",
    )
    return "".join(line if line.endswith("\n") else f"{line}\n" for line in lines)


__all__ = [
    "FileChange",
    "Rendered",
    "Selection",
    "Status",
    "Unrendered",
    "compare",
    "diff",
    "render",
    "write",
]
