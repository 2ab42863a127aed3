"""``reconciler render-partner``: write the partner end of trunks (Kamailio, FreeSWITCH,
Asterisk) as configuration files, or check that a folder holds what would be written."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler import render
from reconciler.cli import github, options
from reconciler.cli.common import EXIT_CHANGES, EXIT_OK, annotated, on_github
from reconciler.errors import ConfigError
from reconciler.manifests.load import Manifests, load
from reconciler.manifests.problems import plural
from reconciler.manifests.secrets import environment
from reconciler.pipeline import rendering
from reconciler.pipeline.rendering import FileChange, Rendered, Selection, Status

if TYPE_CHECKING:
    from reconciler.cli.options import Commands

DEFAULT_OUTPUT = "partner-config"
STDOUT = "-"


def register(commands: Commands) -> None:
    command = commands.add_parser(
        "render-partner",
        help="write the Kamailio, FreeSWITCH or Asterisk end of trunks as configuration files",
        description=(
            "Render the partner end of every trunk whose partner is a kamailio, freeswitch or "
            "asterisk platform: the files that platform needs to reach Exotel and to accept "
            "Exotel, all derived from the manifests (the DIDs, Exotel's host, port and "
            "signalling addresses, the transport, the realm, the credential, the caller IDs), "
            "one folder per partner under --output (relative to the current directory, as "
            "every path given on the command line is). A partner's files always cover all of its "
            "trunks; --account, --trunk and --partner choose which partners are rendered. "
            "Digest passwords are never written: each platform reads the ${ENV} variable the "
            "manifest names, where it runs (docs/partners/). Files no longer rendered are "
            "removed, but only those with the rendered header. LiveKit partners are "
            "configured through LiveKit's API by plan and apply, not here. Reads the "
            "manifests only. Exit codes: 0 written (or, with --check, up to date), 1 error, "
            "2 with --check: the folder differs from what would be rendered."
        ),
    )
    options.path(
        command,
        "a manifest folder, or one manifest file read alone, as plan reads it: the accounts "
        "and partners its trunks name must be declared in it",
    )
    command.add_argument(
        "--output",
        "-o",
        default=DEFAULT_OUTPUT,
        metavar="DIR",
        help="the folder that holds one folder per partner, relative to the current directory, "
        "not to PATH; - prints the files on stdout instead (default: "
        f"{DEFAULT_OUTPUT}, beside manifests/ when run from the repository's top)",
    )
    command.add_argument(
        "--check",
        action="store_true",
        help="write nothing: show how --output differs from what would be rendered (a "
        "unified diff) and exit 2 if it does, as terraform fmt -check does; for CI on pull "
        "requests",
    )
    command.add_argument(
        "--account", action="append", metavar="NAME", help="only this account's trunks (repeatable)"
    )
    command.add_argument(
        "--trunk",
        action="append",
        metavar="NAME",
        help="only the partners of this trunk (repeatable); a trunk that cannot be rendered "
        "(no partner, or a livekit one) is an error",
    )
    command.add_argument(
        "--partner", action="append", metavar="NAME", help="only this partner (repeatable)"
    )
    options.github(command)
    command.set_defaults(run=run_render, unfinished="nothing was rendered")


def run_render(args: argparse.Namespace) -> int:
    if not args.output:
        raise ConfigError(
            "--output is empty: name the folder to write into (default: "
            f"{DEFAULT_OUTPUT}, in the current directory; . for the current directory itself), "
            "or - to print the files"
        )
    if args.check and args.output == STDOUT:
        raise ConfigError("--check compares with a folder, so not with --output -")
    manifests = annotated(load(args.path), args)
    selection = Selection(
        accounts=tuple(args.account or ()),
        trunks=tuple(args.trunk or ()),
        partners=tuple(args.partner or ()),
    )
    rendered = rendering.render(manifests, selection)
    _notices(manifests, rendered)
    if args.output == STDOUT:
        _print(rendered)
        return EXIT_OK
    output = Path(args.output)
    changes = rendering.compare(rendered, output)
    if args.check:
        _github(changes, args)
        return _check(changes, args)
    rendering.write(changes, output)
    _github(changes, args)  # after the write: the summary says what was written
    for change in changes:
        if change.status is not Status.SAME:
            print(f"{_shown(args.output, change.path)}: {_done(change.status)}")
    print(_summary(rendered, changes, args.output))
    return EXIT_OK


def _notices(manifests: Manifests, rendered: Rendered) -> None:
    """On stderr: the manifests' warnings, the trunks not rendered (grouped by why), and
    partners that take no trunk."""
    for problem in manifests.warnings:
        print(problem.text(), file=sys.stderr)
    reasons: dict[str, list[str]] = {}
    for item in rendered.unrendered:
        reasons.setdefault(item.reason, []).append(f"{item.account}/{item.trunk}")
    for reason, trunks in reasons.items():
        print(f"reconciler: not rendered: {', '.join(trunks)}: {reason}", file=sys.stderr)
    done = {r.partner for r in rendered.renderings}
    for name in rendered.folders:
        if name not in done:
            print(f"reconciler: partner {name} takes no trunk: no files", file=sys.stderr)
    if not rendered.renderings:
        print(
            "reconciler: nothing to render: no chosen trunk has a kamailio, freeswitch or "
            "asterisk partner",
            file=sys.stderr,
        )


def _print(rendered: Rendered) -> None:
    first = True
    for rendering_ in rendered.renderings:
        for name, text in rendering_.files.items():
            print(("" if first else "\n") + f"==> {rendering_.partner}/{name} <==")
            print(text, end="")
            first = False


def _check(changes: list[FileChange], args: argparse.Namespace) -> int:
    differing = [c for c in changes if c.status is not Status.SAME]
    for change in differing:
        print(rendering.diff(change, args.output), end="")
    for change in differing:
        print(f"{_shown(args.output, change.path)}: {_would(change.status)}")
    if not differing:
        print(f"{args.output}: up to date ({plural(len(changes), 'file')})")
        return EXIT_OK
    command = f"reconciler render-partner {args.path} --output {args.output}"
    print(f"{args.output}: {_differ(len(differing))}: run {command} and commit the result")
    return EXIT_CHANGES


def _github(changes: list[FileChange], args: argparse.Namespace) -> None:
    """On GitHub: a job summary of what differs (with the diff), and the outputs
    ``differs`` (true or false) and ``files`` (one a line)."""
    if not github.enabled(args.github, environment()):
        return
    differing = [c for c in changes if c.status is not Status.SAME]
    if not differing:
        title = f"up to date ({plural(len(changes), 'file')})"
    elif args.check:
        title = _differ(len(differing))
    else:
        title = f"{plural(len(differing), 'file')} written or removed"
    verb = " --check" if args.check else ""
    lines = [f"### reconciler render-partner{verb}: {render.escape(args.output)}: {title}", ""]
    if differing:
        lines += ["| File | |", "|---|---|"]
        for change in differing:
            said = _would(change.status) if args.check else _done(change.status)
            lines.append(f"| `{_shown(args.output, change.path)}` | {said} |")
        diffs = "".join(rendering.diff(change, args.output) for change in differing)
        lines += ["", "<details><summary>The diff</summary>", "", "````diff", diffs.rstrip()]
        lines += ["````", "", "</details>"]
    github.summary(on_github("\n".join(lines) + "\n", args))
    github.outputs(
        {
            "differs": str(bool(differing)).lower(),
            "files": "\n".join(_shown(args.output, c.path) for c in differing),
        }
    )


def _differ(count: int) -> str:
    return f"{plural(count, 'file')} {'differs' if count == 1 else 'differ'} from the manifests"


def _shown(output: str, path: str) -> str:
    return f"{output.rstrip('/')}/{path}"


def _done(status: Status) -> str:
    return {
        Status.NEW: "written (new)",
        Status.CHANGED: "written (changed)",
        Status.SAME: "unchanged",
        Status.STALE: "removed (no longer rendered)",
    }[status]


def _would(status: Status) -> str:
    return {
        Status.NEW: "missing (would be written)",
        Status.CHANGED: "differs (would be written)",
        Status.SAME: "up to date",
        Status.STALE: "no longer rendered (would be removed)",
    }[status]


def _summary(rendered: Rendered, changes: list[FileChange], output: str) -> str:
    trunks = sum(len(r.trunks) for r in rendered.renderings)
    counted = {status: sum(c.status is status for c in changes) for status in Status}
    written = counted[Status.NEW] + counted[Status.CHANGED]
    parts = [f"{plural(written, 'file')} written"]
    if counted[Status.STALE]:
        parts.append(f"{counted[Status.STALE]} removed")
    parts.append(f"{counted[Status.SAME]} unchanged")
    return (
        f"{output}: {plural(len(rendered.renderings), 'partner')} "
        f"({plural(trunks, 'trunk')}): {', '.join(parts)}"
    )


__all__ = ["register", "run_render"]
