"""The command line: argv -> the pipeline -> output and an exit code.

The only module that prints. Each subcommand parses its options, calls one function,
and maps the outcome to the exit codes of docs/architecture.md ("Exit codes"): 0 success,
1 error, 2 changes or drift present, 3 refused. Output for machines goes to stdout.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import re
import signal
import sys
from collections.abc import Coroutine, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from reconciler import diagram, render
from reconciler.checking import report as checks
from reconciler.cli import arguments, github, logs, options, progress, saved_plans
from reconciler.errors import (
    ApiError,
    AuthFailed,
    ConfigError,
    Interrupted,
    ManifestError,
    ReconcilerError,
    Refused,
)
from reconciler.manifests import schema
from reconciler.manifests.load import Manifests, load
from reconciler.manifests.problems import Severity, plural
from reconciler.manifests.secrets import environment
from reconciler.manifests.windows import IST
from reconciler.pipeline import (
    ApplyOptions,
    Options,
    apply,
    checking,
    drifting,
    import_trunks,
    inventory,
    make_plan,
    state_branch,
    tracing,
    validating,
)
from reconciler.pipeline.accounts import known_trunks
from reconciler.plan.actions import Plan

EXIT_OK, EXIT_ERROR, EXIT_CHANGES, EXIT_REFUSED = 0, 1, 2, 3
T = TypeVar("T")


GRACE = 5.0  # seconds the requests in flight get to be answered after a first signal


def _run(work: Coroutine[Any, Any, T], stopping: asyncio.Event | None = None) -> T:
    """Run a command's coroutine; SIGTERM (a CI runner cancelling the job) stops it the way
    SIGINT does, by cancelling it, so its cleanup runs: locks released, ledger saved.

    With ``stopping`` (an apply that will not prompt), the first SIGINT or SIGTERM sets it
    instead: no new request is sent, and the requests in flight get ``GRACE`` seconds to be
    answered and recorded before the cancel. A second signal cancels at once. GitHub
    cancels a job with SIGINT, then SIGTERM 7.5 s later, which fits."""

    async def main() -> T:
        task = asyncio.current_task()
        loop = asyncio.get_running_loop()

        def signalled() -> None:
            assert task is not None
            if stopping is None or stopping.is_set():
                task.cancel()
                return
            stopping.set()
            print(
                f"reconciler: stopping: no new request is sent; those in flight get {GRACE:g} s "
                "to be answered and recorded (signal again to stop now)",
                file=sys.stderr,
                flush=True,
            )
            loop.call_later(GRACE, task.cancel)

        signals = (signal.SIGTERM, signal.SIGINT) if stopping is not None else (signal.SIGTERM,)
        if task is not None:
            for signum in signals:
                with contextlib.suppress(NotImplementedError, RuntimeError):
                    loop.add_signal_handler(signum, signalled)
        return await work

    return asyncio.run(main())


def _summary(manifests: Manifests) -> str:
    errors, warnings = len(manifests.errors), len(manifests.warnings)
    scope = (
        f"{plural(len(manifests.files), 'file')}, {plural(len(manifests.accounts), 'account')}, "
        f"{plural(len(manifests.trunks), 'trunk')}"
    )
    ledgers = sum(item.reason == "ledger" for item in manifests.skipped)
    others = len(manifests.skipped) - ledgers
    left = [f"{plural(others, 'file')} skipped"] if others else []
    left += [f"{plural(ledgers, 'ledger file')} (for plan and apply)"] if ledgers else []
    scope += f" ({', '.join(left)})" if left else ""
    verdict = "invalid" if errors else "valid"
    counts = [plural(n, word) for n, word in ((errors, "error"), (warnings, "warning")) if n]
    return f"{manifests.root}: {scope}: {verdict}" + (f" ({', '.join(counts)})" if counts else "")


def _validate_markdown(manifests: Manifests) -> str:
    lines = [f"### reconciler validate: {render.escape(_summary(manifests))}", ""]
    if manifests.problems:
        lines += ["| Where | Severity | Field | Problem |", "|---|---|---|---|"]
        for problem in manifests.problems:
            where = f"{problem.file}:{problem.line}" if problem.line else problem.file
            cells = (where, str(problem.severity), problem.path or "", problem.message)
            lines.append("| " + " | ".join(render.escape(cell) for cell in cells) + " |")
    return "\n".join(lines) + "\n"


def run_validate(args: argparse.Namespace) -> int:
    manifests = validating.validate(args.path)
    if args.format == "json":
        document = {
            "format_version": 1,
            "valid": not manifests.errors,
            "root": manifests.root,
            "files": list(manifests.files),
            "skipped": [{"path": i.path, "reason": i.reason} for i in manifests.skipped],
            "accounts": sorted(manifests.accounts),
            "trunks": len(manifests.trunks),
            "errors": len(manifests.errors),
            "warnings": len(manifests.warnings),
            "problems": [problem.document() for problem in manifests.problems],
        }
        print(json.dumps(document, indent=2))
    else:
        for problem in manifests.problems:
            print(problem.text())
        for item in manifests.skipped:
            if item.reason != "ledger":
                print(f"{item.path}: skipped: {item.reason}")
        print(_summary(manifests))
    if github.enabled(args.github, environment()):
        github.summary(_validate_markdown(manifests))
        github.outputs({"accounts": json.dumps(sorted(manifests.accounts))})
        _print_annotations(manifests)
    return EXIT_ERROR if manifests.errors else EXIT_OK


def _print_annotations(manifests: Manifests) -> None:
    """On standard error, which the runner reads too, so ``--format json`` stays parseable."""
    for line in github.annotate(manifests.problems):
        print(line, file=sys.stderr)


def _write_plan(plan: Plan, args: argparse.Namespace) -> None:
    if args.format == "json":
        print(render.json_text(plan), end="")
    elif args.format == "markdown":
        print(_markdown(plan, args), end="")
    else:
        colour = sys.stdout.isatty() and "NO_COLOR" not in environment()
        print(render.text(plan, colour=colour), end="")
    if args.out:
        saved_plans.write(plan.document(), Path(args.out), environment())


def _markdown(plan: Plan, args: argparse.Namespace) -> str:
    """A plan as a pull-request comment: on GitHub, with its commit, run and time."""
    environ = environment()
    if not github.enabled(args.github, environ):
        return render.markdown(plan)
    return render.markdown(plan, footer=github.footer(environ), elsewhere=github.elsewhere(environ))


def _on_github(text: str, args: argparse.Namespace) -> str:
    """Any markdown body for GitHub: its footer, and bounded to a comment's size."""
    environ = environment()
    if not github.enabled(getattr(args, "github", False), environ):
        return text
    return render.bounded(text, footer=github.footer(environ), elsewhere=github.elsewhere(environ))


def _annotated(manifests: Manifests, args: argparse.Namespace) -> Manifests:
    """On GitHub, manifest errors also become annotations on the pull request's diff."""
    if manifests.errors and github.enabled(args.github, environment()):
        _print_annotations(manifests)
    return manifests


def run_plan(args: argparse.Namespace) -> int:
    manifests = _annotated(load(args.path), args)
    known_trunks(manifests, args.account or [], frozenset(args.trunk or ()))
    options = Options(
        refresh=args.refresh,
        max_delete=args.max_delete,
        per_minute=args.rate_limit,
        trunks=frozenset(args.trunk or ()),
    )
    plan = _run(
        make_plan(manifests, accounts=args.account or [], environ=environment(), options=options)
    )
    _write_plan(plan, args)
    if github.enabled(args.github, environment()):
        github.summary(_markdown(plan, args))
        github.outputs(
            {
                "has_changes": str(plan.has_changes).lower(),
                "checksum": plan.checksum,
                "plan_path": args.out or "",
            }
        )
    if args.detailed_exitcode and plan.has_changes:
        return EXIT_CHANGES
    return EXIT_OK


def _confirm(plan: Plan, args: argparse.Namespace) -> bool:
    """Ask on a terminal; with --auto-approve, yes; with neither, refuse rather than guess."""
    if args.auto_approve:
        return True
    if not sys.stdin.isatty():
        raise Refused(
            "no terminal to confirm on: pass --auto-approve, or --plan FILE with a plan that "
            "was reviewed (nothing was applied)"
        )
    counts = render.summary(plan)
    answer = input(f"\nApply this plan to Exotel ({counts})? Only 'yes' is accepted: ")
    return answer.strip() == "yes"


def run_apply(args: argparse.Namespace) -> int:
    manifests = _annotated(load(args.path), args)
    known_trunks(manifests, args.account or [], frozenset(args.trunk or ()))
    saved = saved_plans.read(args.plan or [], environment())
    options = Options(
        max_delete=args.max_delete,
        per_minute=args.rate_limit,
        trunks=frozenset(args.trunk or ()),
    )
    # Without a prompt, a signal drains the requests in flight; at the prompt, Ctrl-C must
    # still stop the question, so there only SIGTERM is caught (and cancels).
    prompts = not (args.auto_approve or saved)
    stopping = None if prompts else asyncio.Event()
    apply_options = ApplyOptions(
        force=args.force,
        saved_plans=tuple(saved),
        break_lock=args.break_lock,
        lock_timeout=args.lock_timeout,
        stopping=stopping,
    )
    with progress.reporter() as on_outcome:

        def show(plan: Plan) -> None:
            # With --format json, stdout holds the one JSON document: the plan goes to stderr.
            stream = sys.stderr if args.format == "json" else sys.stdout
            colour = stream.isatty() and "NO_COLOR" not in environment()
            print(render.text(plan, colour=colour), end="", flush=True, file=stream)
            on_outcome.begin(len(plan.actions))

        result = _run(
            apply(
                manifests,
                accounts=args.account or [],
                environ=environment(),
                options=options,
                apply_options=apply_options,
                confirm=lambda plan: _confirm(plan, args),
                on_outcome=on_outcome,
                on_plan=show,
            ),
            stopping,
        )
    if github.enabled(args.github, environment()):
        github.summary(_on_github(render.report(result, "markdown"), args))
        github.outputs(
            {
                "has_changes": str(result.plan.has_changes).lower(),
                "checksum": result.plan.checksum,
                "converged": str(result.converged).lower(),
            }
        )
    if not result.plan.has_changes:
        _outcome_file(args, "nothing", "Nothing to apply: live state matches the manifests.\n")
        if args.format == "json":
            print(render.report(result, "json"), end="")
        return EXIT_OK
    status = "applied" if result.converged else "not-converged"
    _outcome_file(args, status, render.report(result, "markdown"))
    if args.format != "json":
        print()
    report = render.report(result, args.format)
    print(_on_github(report, args) if args.format == "markdown" else report, end="")
    return EXIT_OK if result.converged else EXIT_ERROR


def _outcome_file(args: argparse.Namespace, status: str, markdown: str) -> None:
    """``apply --report FILE``: the outcome as markdown, whatever it was, for a workflow to
    comment with. Its first line says which accounts and how it ended, for machines."""
    if getattr(args, "report", None) is None or args.command != "apply":
        return
    accounts = ",".join(args.account or []) or "all"
    head = f"<!-- reconciler-apply:{accounts}:{status} -->\n"
    path = Path(args.report)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(head + _on_github(markdown, args), encoding="utf-8")


def _json_outcome(args: argparse.Namespace, status: str, error: Exception) -> None:
    """``apply --format json`` that did not finish still prints one JSON document on
    stdout, so a job that parses it learns how it ended (the message is on stderr too)."""
    if args.command != "apply" or getattr(args, "format", None) != "json":
        return
    document = {"format_version": 1, "outcome": status, "converged": False, "error": str(error)}
    print(json.dumps(document, indent=2))


def run_drift(args: argparse.Namespace) -> int:
    manifests = _annotated(load(args.path), args)
    known_trunks(manifests, args.account or [], frozenset(args.trunk or ()))
    options = Options(per_minute=args.rate_limit, tolerant=True, trunks=frozenset(args.trunk or ()))
    now = datetime.now(UTC)
    plan, coverage = _run(
        drifting.drift(
            manifests,
            accounts=args.account or [],
            environ=environment(),
            options=options,
            budget=args.budget,
            now=now,
        )
    )
    lines = [item.line(now) for item in coverage]
    earlier = [line for item in coverage for line in item.earlier]
    partial = any(item.checked < item.total for item in coverage)
    report = render.drift(plan, args.format, lines, earlier, partial=partial)
    print(_on_github(report, args) if args.format == "markdown" else report, end="")
    drifted, _, unreadable = render.drift_parts(plan)
    # Drift of earlier runs stands until checked again; a trunk made by hand is drift too.
    drift_found = bool(drifted or earlier or render.unmanaged(plan))
    if github.enabled(args.github, environment()):
        markdown = render.drift(plan, "markdown", lines, earlier, partial=partial)
        github.summary(_on_github(markdown, args))
        github.outputs({"drift": str(drift_found).lower(), "checksum": plan.checksum})
    if drift_found:
        return EXIT_CHANGES
    return EXIT_ERROR if unreadable else EXIT_OK


def run_import(args: argparse.Namespace) -> int:
    manifests = load(args.path)
    if not args.trunk_sid and not args.all:
        raise ConfigError("name the trunks to import: --trunk-sid SID (repeatable), or --all")
    root = Path(args.path)
    folder = Path(args.into) if args.into else (root if root.is_dir() else root.parent)
    imported = _run(
        import_trunks(
            manifests,
            account=args.account,
            targets=args.trunk_sid or [],
            everything=args.all,
            folder=folder,
            environ=environment(),
            options=Options(per_minute=args.rate_limit),
            force=args.force,
        )
    )
    if not imported:
        print(f"Nothing to import: every live trunk of account {args.account} is managed.")
        return EXIT_OK
    for trunk in imported:
        if trunk.recorded_only:
            print(f"recorded trunk {trunk.name} ({trunk.sid}), declared in {trunk.file}")
        else:
            print(f"imported trunk {trunk.name} ({trunk.sid}) -> {trunk.file}")
    passwords = [variable for trunk in imported for variable in trunk.passwords]
    print(f"\nThe ledger records {plural(len(imported), 'imported trunk')} by SID.")
    if passwords:
        print(
            "Exotel never returns SIP passwords, so the next plan shows each credential as "
            "'password unknown to the ledger' and apply sets it from these variables (set "
            "them first, as CI secrets too):"
        )
        print("".join(f"  {variable}\n" for variable in passwords), end="")
    else:
        print("A plan now should show no changes.")
    return EXIT_OK


def run_state_pull(args: argparse.Namespace) -> int:
    moved = state_branch.pull(
        load(args.path),
        accounts=args.account or [],
        environ=environment(),
        branch=args.branch,
        remote=args.remote,
        force=args.force,
        guard=options.guard(args),
    )
    for item in moved:
        print(f"ledger of {item.account} ({item.path}): {item.outcome}")
    return EXIT_OK


def run_state_push(args: argparse.Namespace) -> int:
    moved = state_branch.push(
        load(args.path),
        accounts=args.account or [],
        environ=environment(),
        message=args.message,
        applied=args.applied,
        source=Path(args.source) if args.source else None,
        checked=args.checked,
        branch=args.branch,
        remote=args.remote,
        guard=options.guard(args),
    )
    for item in moved:
        print(f"ledger of {item.account} ({item.path}): {item.outcome}")
    return EXIT_OK


def run_state_sign(args: argparse.Namespace) -> int:
    moved = state_branch.sign(
        load(args.path),
        environ=environment(),
        tip=args.tip,
        branch=args.branch,
        remote=args.remote,
        guard=options.guard(args),
    )
    for item in moved:
        print(f"ledger of {item.account} ({item.path}): {item.outcome}")
    print(f"{args.remote}/{args.branch}: signed; every later push builds on it")
    return EXIT_OK


def run_state_path(args: argparse.Namespace) -> int:
    for path in state_branch.paths(load(args.path), accounts=args.account or []):
        print(path)
    return EXIT_OK


def run_state_list(args: argparse.Namespace) -> int:
    found = inventory.rows(load(args.path), accounts=args.account or [])
    if args.format == "json":
        print(json.dumps([row.document() for row in found], indent=2))
        return EXIT_OK
    if not found:
        print("No trunks are managed yet: apply, or import existing ones.")
        return EXIT_OK
    width = max(len(f"{row.account}/{row.trunk}") for row in found)
    for row in found:
        where = f"{row.account}/{row.trunk}".ljust(width)
        protect = "  protected" if row.protect else ""
        print(f"{where}  {row.sid or '(no SID yet)':<28}  {row.status}{protect}")
    return EXIT_OK


def run_state_show(args: argparse.Namespace) -> int:
    document = inventory.show(load(args.path), args.trunk, accounts=args.account or [])
    if args.format == "json":
        print(json.dumps(document, indent=2))
        return EXIT_OK
    print(f"{document['account']}/{document['trunk']}: {document['status']}")
    for key in ("sid", "dial", "protect", "domain_name", "alias"):
        if document.get(key) is not None:
            print(f"  {key}: {document[key]}")
    for number in document.get("phone_numbers", []):
        print(f"  DID {number['number']} (mode {number['mode']})")
    for ip in document.get("whitelisted_ips", []):
        print(f"  whitelisted IP {ip}")
    for uri in document.get("destination_uris", []):
        print(f"  destination {uri['uri']} (priority {uri['priority']}, weight {uri['weight']})")
    for username, version in sorted(document["credentials"].items()):
        print(f"  credential {username} (password_version {version})")
    if document["status"] != "applied":
        print("  (values from the manifests: not all of them are applied yet; see `plan`)")
    return EXIT_OK


def run_serve(args: argparse.Namespace) -> int:
    from reconciler.routing import service as serve  # noqa: PLC0415 (starlette and uvicorn load only to serve)

    clock = None
    if args.now is not None:
        fixed = _moment(args.now)
        clock = lambda: fixed  # noqa: E731 (a fixed clock, to try time rules)
    serve.run(
        Path(args.path),
        host=args.host,
        port=args.port,
        reload_interval=args.reload_interval,
        clock=clock,
    )
    return EXIT_OK


def _moment(text: str, option: str = "--now") -> datetime:
    """``--now``, ``--at``: an ISO 8601 time; without an offset it is Asia/Kolkata's, as
    rules are."""
    clock = re.fullmatch(r"(\d{1,2}):(\d{2})", text)
    if clock:  # a time today, in Asia/Kolkata
        text = f"{datetime.now(IST).date().isoformat()}T{int(clock[1]):02d}:{clock[2]}"
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"{option} {text!r} is not a time: write it as 2026-12-02T10:30 or 10:30 (today; "
            "Asia/Kolkata), or with an offset, 2026-12-02T05:00Z"
        ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=IST)


def _check_options(args: argparse.Namespace) -> checking.CheckOptions:
    if args.ca is not None and not Path(args.ca).is_file():
        raise ConfigError(f"--ca {args.ca}: no such file (give a PEM file of CA certificates)")
    return checking.CheckOptions(
        timeout=args.timeout,
        resolve=checking.parse_resolve(args.resolve),
        ca=args.ca,
        invite=getattr(args, "invite", False),
        concurrency=args.concurrency,
        trunks=frozenset(getattr(args, "trunk", None) or ()),
    )


def run_check(args: argparse.Namespace) -> int:
    manifests = _annotated(load(args.path), args)
    options = _check_options(args)
    accounts = args.account or []
    for entry in checking.unused_resolves(manifests, accounts=accounts, options=options):
        print(
            f"reconciler: warning: --resolve {entry} matches no destination checked",
            file=sys.stderr,
        )
    with progress.counter("checking destinations") as shown:
        options = dataclasses.replace(
            options,
            concurrency=_open_files(options.concurrency),
            on_start=shown.start,
            on_result=lambda _: shown.tick(),
        )
        reports = _run(checking.check(manifests, accounts=accounts, options=options))
    now = datetime.now(UTC)
    if args.format == "json":
        print(checks.json_text(reports, now), end="")
    elif args.format == "markdown":
        print(_on_github(checks.markdown(reports), args), end="")
    else:
        print(checks.text(reports), end="")
    if github.enabled(args.github, environment()):
        github.summary(_on_github(checks.markdown(reports), args))
        github.outputs({"healthy": str(checks.healthy(reports)).lower()})
    return EXIT_OK if checks.healthy(reports) else EXIT_CHANGES


def _open_files(wanted: int) -> int:
    """Probes open one socket each: let ``wanted`` of them be open at once, raising the
    soft limit on open files (often 1,024) towards the hard one; the concurrency that
    fits is returned."""
    try:
        import resource  # noqa: PLC0415 (POSIX only)
    except ImportError:  # pragma: no cover (Windows)
        return wanted
    spare = 64  # the process's own files
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY or soft >= wanted + spare:
        return wanted
    raised = wanted + spare if hard == resource.RLIM_INFINITY else min(wanted + spare, hard)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (raised, hard))
        soft = raised
    return max(1, min(wanted, soft - spare))


def run_graph(args: argparse.Namespace) -> int:
    drawn = inventory.graph(load(args.path), accounts=args.account or [])
    print(diagram.fenced(drawn) if args.format == "markdown" else drawn, end="")
    return EXIT_OK


def run_trace(args: argparse.Namespace) -> int:
    manifests = load(args.path)
    at = _moment(args.at, "--at") if args.at else None
    question = tracing.Question(
        args.did, caller=args.caller, at=at, probe=args.probe, live=not args.offline
    )
    document = _run(
        tracing.trace(
            manifests,
            question,
            environ=environment(),
            api=Options(per_minute=None),
            options=_check_options(args),
        )
    )
    if args.format == "json":
        print(json.dumps(document, indent=2))
    else:
        print(checks.trace_text(document), end="")
    probed = [item["probe"] for item in document["destinations"] if item["probe"] is not None]
    down = any(found["state"] != "up" for found in probed)
    return EXIT_CHANGES if down or document["drift"] else EXIT_OK


def run_schema(args: argparse.Namespace) -> int:
    if args.format == "markdown":
        print(schema.field_reference(), end="")
    else:
        print(schema.json_schema_text(), end="")
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    return arguments.build_parser(
        {
            "validate": run_validate,
            "plan": run_plan,
            "apply": run_apply,
            "drift": run_drift,
            "import": run_import,
            "schema": run_schema,
            "serve": run_serve,
            "check": run_check,
            "graph": run_graph,
            "trace": run_trace,
            "state pull": run_state_pull,
            "state push": run_state_push,
            "state sign": run_state_sign,
            "state path": run_state_path,
            "state list": run_state_list,
            "state show": run_state_show,
        }
    )


def _report(error: ReconcilerError, command: str = "") -> None:
    """A failure as a message on stderr: never a traceback for what a user can fix."""
    if isinstance(error, ManifestError):
        for problem in error.problems:
            print(problem.text(), file=sys.stderr)
        outcome = {
            "serve": "the service did not start",
            "check": "nothing was checked",
            "trace": "nothing was traced",
        }.get(command, "nothing was sent to Exotel")
        print(f"{plural(len(error.problems), 'problem')}: {outcome}", file=sys.stderr)
        return
    if isinstance(error, AuthFailed):
        print(
            f"reconciler: account {error.call.account}: Exotel refused the API key and token "
            "(HTTP 401): check the account's api_key/api_token variables, its sid, and its "
            "region (a key for one region fails on the other)",
            file=sys.stderr,
        )
        return
    prefix = "reconciler: Exotel API: " if isinstance(error, ApiError) else "reconciler: "
    print(f"{prefix}{error}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # apply logs each outcome when nobody watches a progress bar; serve a line per decision
    chatty = args.command == "serve" or (args.command == "apply" and not sys.stderr.isatty())
    quiet = logging.INFO if chatty else logging.WARNING
    logs.configure(level={0: quiet, 1: logging.INFO}.get(args.verbose, logging.DEBUG))
    try:
        result: int = args.run(args)
    except Refused as error:
        print(f"reconciler: refused: {error}", file=sys.stderr)
        refused = f"### reconciler {args.command}: refused (exit 3)\n\n{error}\n"
        if github.enabled(getattr(args, "github", False), environment()):
            github.summary(_on_github(refused, args))
        _outcome_file(args, "refused", refused)
        _json_outcome(args, "refused", error)
        return EXIT_REFUSED
    except ReconcilerError as error:
        _report(error, args.command)
        status = "interrupted" if isinstance(error, Interrupted) else "failed"
        _outcome_file(args, status, f"### reconciler apply: {status} (exit 1)\n\n{error}\n")
        _json_outcome(args, status, error)
        return EXIT_ERROR
    except (KeyboardInterrupt, asyncio.CancelledError):  # Ctrl-C, or SIGTERM (a CI cancel)
        print("interrupted", file=sys.stderr)
        return EXIT_ERROR
    except BrokenPipeError:  # e.g. piped into head
        return EXIT_OK
    return result


__all__ = ["EXIT_CHANGES", "EXIT_ERROR", "EXIT_OK", "EXIT_REFUSED", "Severity", "main"]
