"""The command line's grammar: every subcommand, option and help text.

Called by ``cli.main`` (which binds each subcommand to its ``run_*`` function) and by the
tests that parse the workflows' command lines, so a renamed flag fails the build.
Options shared by several commands are declared once, by the helpers below.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import sys
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, NoReturn

from reconciler import __version__, sandbox
from reconciler.cli import options
from reconciler.cli.commands import ci
from reconciler.exotel.gate import DEFAULT_PER_MINUTE

DEFAULT_PATH = "manifests"
Run = Callable[[argparse.Namespace], int]
MAX_DELETE_HELP = (
    "deletions above which apply refuses (default: 30%% of managed objects, "
    "when there are 10 or more)"
)


class Parser(argparse.ArgumentParser):
    """Usage errors exit 1 ("error"), never 2, which means "changes or drift present": a
    typo in CI must not read as drift."""

    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(1, f"{self.prog}: error: {message}\n")


if TYPE_CHECKING:  # generic to type checkers only
    Commands = argparse._SubParsersAction[Parser]  # the subcommands


def _path(parser: argparse.ArgumentParser, what: str = "manifest file or directory") -> None:
    parser.add_argument(
        "path",
        nargs="?",
        default=DEFAULT_PATH,
        metavar="PATH",
        help=f"{what} (default: {DEFAULT_PATH})",
    )


def _common(parser: argparse.ArgumentParser, *, account: str, formats: tuple[str, ...]) -> None:
    """PATH, --format, --account, --rate-limit and --github, as every API command has them."""
    _path(parser)
    parser.add_argument(
        "--format", choices=formats, default=formats[0], help="the output (default: %(default)s)"
    )
    parser.add_argument("--account", action="append", metavar="NAME", help=account)
    parser.add_argument(
        "--trunk",
        action="append",
        metavar="NAME",
        help="only this trunk (repeatable), as Terraform's -target: the rest of the account "
        "is not looked at, and the output says so",
    )
    parser.add_argument(
        "--rate-limit",
        type=sandbox.non_negative(int),
        default=None,
        metavar="N",
        help="API requests per minute per account (default: the account's rate_limit, "
        f"{DEFAULT_PER_MINUTE} unless set; 0: no limit, for a sandbox started with --rate-limit 0)",
    )
    _github(parser)


def _github(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--github",
        action="store_true",
        help="GitHub Actions extras (job summary, outputs, annotations); on by default when "
        "GITHUB_ACTIONS=true",
    )


def _validate(
    commands: Commands,
) -> argparse.ArgumentParser:
    validate = commands.add_parser(
        "validate",
        help="check manifests without calling any API",
        description=(
            "Load every *.yaml/*.yml under PATH and report every problem at once, with file, "
            "line, column and field path. Errors (exit 1) are what Exotel would refuse or what "
            "would break calls; warnings (exit 0) are allowed but probably not meant. Secrets "
            "must be ${ENV_VAR} references; they need not be set for validate."
        ),
    )
    validate.add_argument(
        "path",
        nargs="*",
        default=[DEFAULT_PATH],
        metavar="PATH",
        help="a manifest folder, or manifest files, checked with the folder whose accounts "
        f"they name (default: {DEFAULT_PATH})",
    )
    validate.add_argument(
        "--format", choices=("text", "json"), default="text", help="the output (default: text)"
    )
    _github(validate)
    return validate


def _plan(commands: Commands) -> argparse.ArgumentParser:
    plan = commands.add_parser(
        "plan",
        help="show what apply would change, without changing anything",
        description=(
            "Read live state from Exotel (only GETs), diff it against the manifests and print "
            "an ordered plan: + create, ~ update, - delete, -/+ replace, ! manual step. "
            "Exit 0 (or 2 with --detailed-exitcode when there are changes), 1 on error."
        ),
    )
    _common(
        plan,
        account="plan only this account (repeatable; default: every declared account)",
        formats=("text", "markdown", "json"),
    )
    plan.add_argument("--out", metavar="FILE", help="also write the plan as JSON to FILE")
    plan.add_argument(
        "--detailed-exitcode",
        action="store_true",
        help="exit 2 when the plan has changes, 0 when it has none",
    )
    plan.add_argument(
        "--refresh",
        choices=("all", "changed"),
        default="all",
        help="all: read every managed trunk (default); changed: only trunks whose manifests "
        "changed since the last apply, plus new and removed ones (cheaper, but blind to drift "
        "on the others)",
    )
    plan.add_argument(
        "--max-delete", type=sandbox.non_negative(int), metavar="N", help=MAX_DELETE_HELP
    )
    return plan


def _apply(
    commands: Commands,
) -> argparse.ArgumentParser:
    apply = commands.add_parser(
        "apply",
        help="make Exotel match the manifests: plan, confirm, execute, verify",
        description=(
            "Re-plan, then execute the plan in dependency order, saving the ledger after "
            "every change that matters and journaling every step; then re-read what was "
            "touched. Exit 0 when converged, 1 when anything failed or remains, 3 when "
            "refused (a stale --plan, a safety rail, no confirmation)."
        ),
    )
    _common(
        apply,
        account="apply only this account (repeatable)",
        formats=("text", "markdown", "json"),
    )
    apply.add_argument(
        "--plan",
        action="append",
        metavar="FILE",
        help="a reviewed plan (from plan --out; repeatable): apply only if re-planning gives "
        "its checksum, or does only what the reviewed plans said (what is left after a "
        "partial apply, or several merged pull requests at once)",
    )
    apply.add_argument("--auto-approve", action="store_true", help="do not ask for confirmation")
    apply.add_argument(
        "--lock-timeout",
        type=sandbox.non_negative(float),
        default=0.0,
        metavar="S",
        help="wait up to S seconds for another apply of the same ledger to finish "
        "(default: fail at once, naming it)",
    )
    apply.add_argument(
        "--report",
        metavar="FILE",
        help="also write the outcome (applied, failed, refused, interrupted) as markdown to "
        "FILE, whatever it is: for a workflow to comment with",
    )
    apply.add_argument(
        "--force",
        action="store_true",
        help="go on although a safety rail holds (empty manifests, too many deletions)",
    )
    apply.add_argument(
        "--max-delete", type=sandbox.non_negative(int), metavar="N", help=MAX_DELETE_HELP
    )
    apply.add_argument(
        "--break-lock",
        action="store_true",
        help="remove a lock left by an apply that died on this host",
    )
    return apply


def _drift(
    commands: Commands,
) -> argparse.ArgumentParser:
    drift = commands.add_parser(
        "drift",
        help="look for changes made outside the reconciler since the last apply",
        description=(
            "Read live state and compare it with the last apply. Exit 0 when nothing drifted, "
            "2 when something did (the report names each trunk and field), 1 on error or when "
            "a trunk could not be read. Manifest changes not yet applied are listed apart."
        ),
    )
    _common(
        drift, account="check only this account (repeatable)", formats=("text", "markdown", "json")
    )
    drift.add_argument(
        "--budget",
        type=int,
        metavar="CALLS",
        help="API calls each account may spend on this run: the trunks checked least "
        "recently go first, and successive runs sweep the account (default: check all)",
    )
    return drift


def _import(
    commands: Commands,
) -> argparse.ArgumentParser:
    importer = commands.add_parser(
        "import",
        help="bring existing trunks under management: write manifests and ledger entries",
        description=(
            "Read existing trunks and write one manifest file per trunk (credentials get "
            "${ENV} placeholders and password_version 1) plus their ledger entries, so a plan "
            "right after is empty but for the passwords to set. Profile minimal cannot read "
            "trunk names: give them as --trunk-sid SID=NAME."
        ),
    )
    _path(importer, "manifest directory, which must declare the account")
    importer.add_argument("--account", required=True, metavar="NAME", help="the declared account")
    importer.add_argument(
        "--trunk-sid", action="append", metavar="SID[=NAME]", help="a trunk to import (repeatable)"
    )
    importer.add_argument(
        "--all", action="store_true", help="every live trunk not yet managed (profile full)"
    )
    importer.add_argument("--into", metavar="DIR", help="where to write the files (default: PATH)")
    importer.add_argument(
        "--force", action="store_true", help="overwrite existing files and ledger entries"
    )
    importer.add_argument(
        "--rate-limit",
        type=sandbox.non_negative(int),
        default=None,
        metavar="N",
        help="API requests per minute (default: the account's rate_limit; 0: no limit)",
    )
    return importer


def _state(commands: Commands, runs: Mapping[str, Run]) -> None:
    state = commands.add_parser(
        "state",
        help="the ledgers on their git branch: pull before planning, push after applying",
        description=(
            "Ledgers live on a git branch of their own (default: reconciler-state), at the "
            "same paths as in the working tree, so applies work under a protected main and "
            "concurrent runs never lose each other's. 'pull' copies them into the working "
            "tree; 'push' commits them onto the branch, compare-and-swap (it retries on the "
            "new tip when another run pushed first)."
        ),
    )
    actions = state.add_subparsers(dest="state_command", metavar="ACTION", required=True)
    for name, words in (
        ("pull", "copy the accounts' ledgers from the branch into the working tree"),
        (
            "push",
            "commit the accounts' ledgers onto the branch (compare-and-swap), signed with "
            "RECONCILER_STATE_KEY when the repository lists who may sign it",
        ),
        (
            "sign",
            "vouch for the branch as it is with a commit signed by the state key "
            "(RECONCILER_STATE_KEY), once, when turning signing on for a branch made before",
        ),
        ("path", "print where each account's ledger is, one path a line"),
        ("list", "list the managed trunks and their SIDs (what Connect applets dial)"),
        ("show", "show one trunk as last applied: SID, DIDs, IPs, destinations, alias"),
    ):
        action = actions.add_parser(name, help=words, description=words[0].upper() + words[1:])
        if name == "show":
            action.add_argument("trunk", metavar="TRUNK", help="the trunk's name")
        _path(action)
        if name in ("list", "show"):
            action.add_argument(
                "--format", choices=("text", "json"), default="text", help="the output"
            )
            action.add_argument(
                "--account", action="append", metavar="NAME", help="only this account"
            )
            action.set_defaults(run=runs[f"state {name}"])
            continue
        if name != "sign":
            action.add_argument(
                "--account",
                action="append",
                metavar="NAME",
                help="only these accounts (repeatable)",
            )
        if name == "path":
            action.set_defaults(run=runs[f"state {name}"])
            continue
        action.add_argument(
            "--branch", default="reconciler-state", help="the ledger branch (default: %(default)s)"
        )
        action.add_argument("--remote", default="origin", help="git remote (default: %(default)s)")
        options.state_guard(action, writes=name != "pull")
        if name == "sign":
            action.add_argument(
                "--tip",
                required=True,
                metavar="COMMIT",
                help="the branch's tip you checked (its SHA, 7 characters or more): the "
                "signature vouches for it, and is refused if the branch moved since",
            )
        if name == "pull":
            action.add_argument(
                "--force",
                action="store_true",
                help="replace local ledgers that differ from the branch's (not yet pushed)",
            )
        if name == "push":
            action.add_argument(
                "--message",
                default="reconciler: ledger after apply",
                help="the commit message (default: %(default)s)",
            )
            action.add_argument(
                "--applied",
                metavar="COMMIT",
                help="also record that the manifests at COMMIT were applied (read by the "
                "apply workflow to know which merged pull requests a run carries)",
            )
            action.add_argument(
                "--checked",
                action="store_true",
                help="push drift's records of when each trunk was checked, not the ledgers",
            )
            action.add_argument(
                "--from",
                dest="source",
                metavar="DIR",
                help="read the ledgers from DIR, laid out as the repository is (an apply "
                "job's artifact), instead of the working tree",
            )
        action.set_defaults(run=runs[f"state {name}"])


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    parse = sandbox.non_negative(kind)

    def positive(text: str) -> int | float:
        value = parse(text)
        if math.isinf(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
        if not math.isfinite(value) or value == 0:
            raise argparse.ArgumentTypeError(f"must be a number greater than zero, got {text}")
        return value

    return positive


MIN_RELOAD_INTERVAL = 0.1  # seconds: any shorter only spends a core looking at files


def _reload_interval(text: str) -> float:
    value = float(_positive(float)(text))
    if value < MIN_RELOAD_INTERVAL:
        raise argparse.ArgumentTypeError(
            f"must be at least {MIN_RELOAD_INTERVAL} s (looking more often only spends a "
            f"core), got {text}"
        )
    return value


def _probing(parser: argparse.ArgumentParser) -> None:
    """The options of a SIP probe, shared by check and trace --probe."""
    parser.add_argument(
        "--timeout",
        type=_positive(float),
        default=5.0,
        metavar="S",
        help="seconds each destination gets to resolve, connect, shake hands and answer "
        "OPTIONS, and separately to answer an INVITE (default: %(default)s)",
    )
    parser.add_argument(
        "--resolve",
        action="append",
        default=[],
        metavar="HOST:PORT:ADDRESS",
        help="connect to ADDRESS for HOST:PORT, as curl does: check a new SBC before its DNS "
        "changes (repeatable)",
    )
    parser.add_argument(
        "--ca",
        metavar="FILE",
        help="verify TLS against the CA certificates in FILE (PEM) instead of the system's",
    )
    parser.add_argument(
        "--concurrency",
        type=_positive(int),
        default=1000,
        metavar="N",
        help="destinations probed at once; each distinct destination is probed once, "
        "however many trunks share it (default: %(default)s)",
    )


def _check(commands: Commands) -> argparse.ArgumentParser:
    check = commands.add_parser(
        "check",
        help="prove that the trunks' destinations answer SIP (DNS, TCP, TLS, OPTIONS)",
        description=(
            "Probe every destination URI of the chosen trunks from here, in the order Exotel "
            "tries them: the name resolves, the port accepts TCP, TLS verifies (host name, "
            "expiry: a warning within 21 days), and a SIP OPTIONS gets a final answer. With "
            "--invite, also place a test call to one of each trunk's DIDs. Calls nothing at "
            "Exotel. Exit 0 when every destination is up, 2 when problems or warnings were "
            "found, 1 when the check could not run."
        ),
    )
    _path(check)
    check.add_argument(
        "--format",
        choices=("text", "markdown", "json"),
        default="text",
        help="the output; markdown is the health issue's body (default: text)",
    )
    check.add_argument(
        "--account", action="append", metavar="NAME", help="only this account (repeatable)"
    )
    check.add_argument(
        "--trunk", action="append", metavar="NAME", help="only this trunk (repeatable)"
    )
    _probing(check)
    check.add_argument(
        "--invite",
        action="store_true",
        help="also send an INVITE to the trunk's first DID, offering PCMA and PCMU, then hang "
        "up (CANCEL, or ACK and BYE). CAUTION: this rings a real bot or agent",
    )
    _github(check)
    return check


def _trace(commands: Commands) -> argparse.ArgumentParser:
    trace = commands.add_parser(
        "trace",
        help="explain where a call to a DID goes: trunk, route rule, destinations",
        description=(
            "Explain an inbound call to DID from the manifests, the ledger and, when the "
            "account's API key and token are set, live state (at most two GETs): the trunk "
            "the DID is on and its SID, pstn or flow, which route rule matches and why, the "
            "Dynamic URL's and the handoff's answers at that time, and the destinations in "
            "the order Exotel tries them. --probe checks each destination, as check does."
        ),
    )
    trace.add_argument("did", metavar="DID", help="the number called, like +918040264208")
    _path(trace)
    trace.add_argument(
        "--format", choices=("text", "json"), default="text", help="the output (default: text)"
    )
    trace.add_argument("--from", dest="caller", metavar="CALLER", help="the caller's number")
    trace.add_argument(
        "--at",
        metavar="TIME",
        help="the time of the call (2026-12-02T19:30, Asia/Kolkata unless an offset is "
        "given; default: now)",
    )
    trace.add_argument("--probe", action="store_true", help="also check each destination")
    trace.add_argument(
        "--offline", action="store_true", help="do not read live state, even with credentials"
    )
    _probing(trace)
    return trace


def _verbose_everywhere(parser: argparse.ArgumentParser) -> None:
    """``-v`` after the subcommand too (``reconciler drift -v``), as before it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                with contextlib.suppress(argparse.ArgumentError):
                    sub.add_argument(
                        "-v",
                        "--verbose",
                        action="count",
                        default=argparse.SUPPRESS,
                        help="log more on stderr (-vv: every API request)",
                    )
                _verbose_everywhere(sub)


def build_parser(runs: Mapping[str, Run]) -> argparse.ArgumentParser:
    parser = Parser(
        prog="reconciler",
        description=(
            "Declarative, GitOps-style reconciler for Exotel vSIP trunking. "
            "Exit codes: 0 success, 1 error, 2 changes or drift present, 3 refused."
        ),
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log more on stderr: -v retries and progress, -vv every API request",
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, make in (
        ("validate", _validate),
        ("plan", _plan),
        ("apply", _apply),
        ("drift", _drift),
        ("import", _import),
    ):
        make(commands).set_defaults(run=runs[name])
    _state(commands, runs)
    ci.register(commands)
    _check(commands).set_defaults(run=runs["check"])
    graph = commands.add_parser(
        "graph",
        help="draw the topology: DIDs, trunks, destinations and routes (Mermaid)",
        description=(
            "Print the declared topology as a Mermaid flowchart (GitHub renders it in "
            "markdown): each DID to its trunk (with its SID from the ledger), each trunk "
            "to its destinations (priority, weight), and each route's rules to the trunks "
            "they send calls to. Reads the manifests and ledgers only."
        ),
    )
    _path(graph)
    graph.add_argument(
        "--format",
        choices=("mermaid", "markdown"),
        default="mermaid",
        help="mermaid: the flowchart alone; markdown: in a fenced block (default: %(default)s)",
    )
    graph.add_argument("--account", action="append", metavar="NAME", help="only this account")
    graph.set_defaults(run=runs["graph"])
    _trace(commands).set_defaults(run=runs["trace"])
    serve = commands.add_parser(
        "serve",
        help="answer Exotel's Dynamic URL and handoff webhooks from the routes: manifests",
        description=(
            "Serve GET /connect (the Connect applet's Dynamic URL), GET /handoff (the Passthru "
            "applet) and GET /healthz from the manifests' routes, resolving trunk names to SIDs "
            "through the ledger. Reloads when manifests or ledgers change, without a restart."
        ),
    )
    _path(serve)
    serve.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    serve.add_argument(
        "--port", type=sandbox.port_number, default=8080, help="port (default: %(default)s)"
    )
    serve.add_argument(
        "--now",
        metavar="TIME",
        help="answer as if it were TIME (2026-12-02T19:30, Asia/Kolkata unless an offset is "
        "given), to try time rules without waiting for the hour",
    )
    serve.add_argument(
        "--reload-interval",
        type=_reload_interval,
        default=2.0,
        metavar="S",
        help="how often to look for changed manifests and ledgers (default: %(default)s s)",
    )
    serve.set_defaults(run=runs["serve"])
    schema = commands.add_parser(
        "schema",
        help="print the JSON Schema of the manifest language",
        description=(
            "Print the JSON Schema of manifest files (editors use the copy in "
            "schema/manifest.schema.json), or with --format markdown the field reference."
        ),
    )
    schema.add_argument(
        "--format",
        choices=("json", "markdown"),
        default="json",
        help="json: the JSON Schema; markdown: the field reference (default: json)",
    )
    schema.set_defaults(run=runs["schema"])
    sandbox_parser = commands.add_parser(
        "sandbox",
        help="serve a faithful emulator of Exotel's vSIP API on loopback",
        description=(
            "Serve Exotel's vSIP API with its envelopes, validation, pagination, rate limit and "
            "quirks, plus control endpoints under /_sandbox/ (reset, state, stats, faults). "
            "Prints 'listening on URL' when ready; stops on SIGINT or SIGTERM."
        ),
    )
    sandbox.add_arguments(sandbox_parser)
    sandbox_parser.set_defaults(run=sandbox.run)
    _verbose_everywhere(parser)
    return parser
