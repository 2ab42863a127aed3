"""``reconciler ci ...``: the GitOps workflows' GitHub steps, as tested commands.

Each step of ``.github/workflows/*.yml`` that talks to GitHub is a line calling one of
these (docs/gitops.md has the table). They read the runner's default variables
(``GITHUB_API_URL``, ``GITHUB_REPOSITORY``, ``GITHUB_SERVER_URL``, ``GITHUB_RUN_ID``) and
the job's token as ``GH_TOKEN``, write step outputs to ``GITHUB_OUTPUT``, and exit 0 on
success, 1 on an error (GitHub unreachable, a bad option), 3 when they refuse.
"""

from __future__ import annotations

import argparse
import json
import urllib.parse
from collections.abc import Callable
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

from reconciler.cli import github, options
from reconciler.cli.common import EXIT_ERROR, EXIT_OK, read_text
from reconciler.errors import ConfigError, LedgerError, Refused
from reconciler.github import comments, plans, reports, shards
from reconciler.github import merge as merging
from reconciler.github.rest import from_environment
from reconciler.manifests.load import load
from reconciler.manifests.secrets import environment
from reconciler.pipeline import state_branch, state_signing
from reconciler.pipeline.state_branch import APPLIED, Git

if TYPE_CHECKING:
    from reconciler.cli.options import Commands


def _json_list(text: str, option: str) -> list[Any]:
    try:
        value = json.loads(text or "[]")
    except ValueError:
        raise ConfigError(f"{option} must be a JSON list, not {text[:80]!r}") from None
    if not isinstance(value, list):
        raise ConfigError(f"{option} must be a JSON list, not {text[:80]!r}")
    return value


def _run_url() -> str:
    env = environment()
    server, repository = env.get("GITHUB_SERVER_URL", ""), env.get("GITHUB_REPOSITORY", "")
    return f"{server}/{repository}/actions/runs/{env.get('GITHUB_RUN_ID', '')}"


def run_merge(args: argparse.Namespace) -> int:
    env = environment()
    server = env.get("GITHUB_SERVER_URL", "https://github.com")
    url = args.url or f"{server}/{env.get('GITHUB_REPOSITORY', '')}.git"
    merged = merging.build(
        url=url,
        server=server,
        token=env.get("GH_TOKEN", ""),
        base=args.base,
        pr=args.pr,
        head_sha=args.head,
        manifests=PurePosixPath(args.manifests),
        into=Path(args.into),
        environ=env,
    )
    print(
        f"pull request #{args.pr}: head {merged.head_sha[:12]} merged onto {args.base} at "
        f"{merged.base_sha[:12]}; the manifests {'change' if merged.changed else 'do not change'}"
    )
    github.outputs(
        {"changed": str(merged.changed).lower(), "base_sha": merged.base_sha, "tree": merged.tree},
        env,
    )
    return EXIT_OK


NOTES = {
    "none": (
        "<!-- reconciler-plan:none -->\n### Exotel plan: no manifest changed\n\n"
        "Commit `{head}` changes no manifest: nothing to plan, nothing will be applied.\n"
    ),
    "fork": (
        "<!-- reconciler-plan:fork -->\n### Exotel plan: not planned\n\nThe manifests were "
        "validated. Pull requests from forks are not planned: planning reads live Exotel "
        "state with production credentials, which are never given to a fork's pull request. "
        "A maintainer can push this branch to the repository to get a plan.\n"
    ),
}


def run_comment(args: argparse.Namespace) -> int:
    if args.note:
        body = NOTES[args.note].format(head=args.head[:12] or "this commit")
        github.summary(body, environment())
    elif args.body:
        body = read_text(args.body)
    else:
        raise ConfigError("give the comment: --body FILE, or --note none|fork")
    with from_environment(environment()) as client:
        posted = comments.upsert_comment(client, args.pr, body, author=args.author)
    print(f"plan comment on #{args.pr}: {posted.action}")
    return EXIT_OK


def run_stale(args: argparse.Namespace) -> int:
    env = environment()
    error = read_text(args.error) if args.error and Path(args.error).exists() else ""
    with from_environment(env) as client:
        posted = comments.mark_stale(
            client,
            args.pr,
            head=args.head,
            run_url=_run_url(),
            error=comments.redact(error, env),
            author=args.author,
        )
    print(f"plan comment on #{args.pr}: marked stale ({posted.action})")
    return EXIT_OK


def run_issue(args: argparse.Namespace) -> int:
    body, status = _alarm(args)
    if status == 1:
        print(f"the {args.label} run failed (exit 1): the issue is left as it is")
        return EXIT_OK
    marker = body.split("\n", 1)[0]
    if not marker.startswith("<!--"):
        raise ConfigError(f"{args.body} does not start with its HTML marker (<!-- ... -->)")
    with from_environment(environment()) as client:
        posted = comments.sync_issue(
            client,
            label=args.label,
            marker=marker.split(":", 1)[0] if ":" in marker else marker,
            title=args.title,
            body=body,
            present=status == 2,
            resolved=args.resolved,
            author=args.author,
        )
    print(f"{args.label} issue: {posted.action}" + (f" #{posted.number}" if posted.number else ""))
    return EXIT_OK


def _alarm(args: argparse.Namespace) -> tuple[str, int]:
    """The issue's body and the run's exit code: one report (``--body``, ``--status``), or
    every shard's, merged (``--reports``, ``--expect``)."""
    if args.reports:
        if args.body or args.status is not None:
            raise ConfigError("give --body and --status, or --reports and --expect: not both")
        expected = _json_list(args.expect, "--expect")
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in expected):
            raise ConfigError(f"--expect must list shard numbers, like [1, 3], not {args.expect}")
        found = shards.read(Path(args.reports), expected, kind=args.label)
        merged = shards.merge(found, args.shard_count or max(expected, default=1))
        for index in merged.failed:
            print(f"::warning::shard {index} of the {args.label} run failed or kept no report")
        return merged.body, merged.status
    if not args.body or args.status is None:
        raise ConfigError("give --body FILE and --status CODE (or --reports DIR and --expect)")
    if args.status not in (0, 1, 2):
        raise ConfigError(f"--status {args.status}: expected the command's exit code, 0 to 2")
    return (read_text(args.body) if args.status != 1 else ""), args.status


def run_gather(args: argparse.Namespace) -> int:
    try:
        kept = shards.gather(Path(args.source), args.kind, args.run_id, Path(args.into))
    except OSError as error:
        raise ConfigError(f"cannot gather into {args.into}: {error.strerror or error}") from None
    for key, folder in sorted(kept.items()):
        print(f"{args.kind} {key}: {folder.name}")
    if not kept:
        print(f"{args.source} holds no {args.kind}-*-{args.run_id}-* artifact: nothing gathered")
    return EXIT_OK


def run_busy(args: argparse.Namespace) -> int:
    with from_environment(environment()) as client:
        status = comments.busy(client, args.workflow)
    if status:
        print(f"a run of {args.workflow} is {status.replace('_', ' ')}")
        github.summary(f"Skipped: a run of {args.workflow} is {status}; the next run looks again.")
    github.outputs({"busy": "true" if status else "false"}, environment())
    return EXIT_OK


def run_find_plans(args: argparse.Namespace) -> int:
    env = environment()
    manifests = Path(args.manifests)
    git = Git.around(manifests, env)
    search = plans.Search(
        commit=args.commit,
        event_pr=args.pr,
        manifests=PurePosixPath(manifests.resolve().relative_to(git.root.resolve()).as_posix()),
        base=args.base,
        plan_workflow=args.plan_workflow,
        wait_seconds=args.wait,
    )
    into = Path(args.into)
    into.mkdir(parents=True, exist_ok=True)
    (into / "README").write_text("the reviewed plans this run carries, a folder each\n")
    with from_environment(env) as client:
        found = plans.find(client, git, search, into, on_progress=print)
    listed = json.dumps([item.document() for item in found])
    github.outputs({"prs": listed}, env)
    return EXIT_OK


def run_apply(args: argparse.Namespace) -> int:
    """Apply the reviewed plans this run carries to one account, unless a later run has
    already applied this merge; ``apply --report`` writes how it ended."""
    from reconciler.cli.main import main  # noqa: PLC0415 (the apply command itself)

    git = Git.around(Path(args.path), environment())
    [ledger] = state_branch.paths(load(args.path), accounts=[args.account])
    marker = ledger.with_name(ledger.name + APPLIED)
    report = Path(args.report)
    if marker.exists() and not args.again:
        last = marker.read_text(encoding="utf-8").strip()
        if git("merge-base", "--is-ancestor", args.commit, last, check=False).returncode == 0:
            report.write_text(
                f"<!-- reconciler-apply:{args.account}:already -->\n"
                f"Already applied by a later run (commit `{last[:12]}`).\n",
                encoding="utf-8",
            )
            print(f"account {args.account}: already applied by a later run ({last[:12]})")
            return EXIT_OK
    found = sorted(Path(args.reviewed).glob("*/plan.json"))
    if not found:
        report.write_text(
            f"<!-- reconciler-apply:{args.account}:nothing -->\nNo manifest changes to apply.\n",
            encoding="utf-8",
        )
        print(f"account {args.account}: no reviewed plan carried, nothing to apply")
        return EXIT_OK
    argv = ["apply", args.path, "--account", args.account, "--report", args.report]
    for plan in found:
        argv += ["--plan", str(plan)]
    return main(argv)


def run_save(args: argparse.Namespace) -> int:
    """Push each account's ledger from its newest apply attempt; mark the merge applied
    only for an account that converged (an unfinished one keeps its plans next run)."""
    accounts = [str(a) for a in _json_list(args.accounts, "--accounts")]
    kept = reports.newest_attempts(Path(args.source), accounts, args.run_id)
    manifests = load(args.path)
    failed = False
    for account in accounts:
        if account not in kept:
            print(f"::error::the apply job of {account} kept nothing: its ledger is not saved")
            failed = True
            continue
        ended = reports.status(kept[account])
        if ended == "already":
            print(f"account {account}: a later run applied this merge; nothing to save")
            continue
        applied = args.commit if ended in ("applied", "nothing") else None
        try:
            moved = state_branch.push(
                manifests,
                accounts=[account],
                environ=environment(),
                message=f"reconciler: ledger of {account} after applying {args.commit}",
                applied=applied,
                source=kept[account],
                branch=args.branch,
                remote=args.remote,
                guard=options.guard(args),
            )
        except (ConfigError, LedgerError) as error:
            print(f"::error::account {account}: {error}")
            failed = True
            continue
        for item in moved:
            print(f"ledger of {item.account} ({item.path}): {item.outcome}")
    return EXIT_ERROR if failed else EXIT_OK


def run_known_hosts(args: argparse.Namespace) -> int:
    """Write a known_hosts file from the SSH host keys GitHub publishes (``GET /meta``), so
    a push with the state key trusts GitHub's keys and nothing else; the step's output
    ``remote`` is the repository's SSH URL, where the state key pushes."""
    env = environment()
    host = args.host or urllib.parse.urlsplit(env.get("GITHUB_SERVER_URL", "")).hostname
    if not host:
        raise ConfigError("--host is required when GITHUB_SERVER_URL is not set")
    name, _, port = host.partition(":")
    if port and not port.isdigit():
        raise ConfigError(f"--host {host}: expected HOST or HOST:PORT")
    with from_environment(env) as client:
        keys = client.get("/meta").get("ssh_keys") or []
    if not keys or not all(isinstance(key, str) for key in keys):
        raise ConfigError(f"{client.api_url}/meta lists no SSH host keys (ssh_keys)")
    text = state_signing.known_hosts_lines(name, int(port) if port else None, keys)
    try:
        Path(args.out).write_text(text, encoding="utf-8")
    except OSError as error:
        raise ConfigError(f"cannot write {args.out}: {error.strerror or error}") from None
    print(f"{args.out}: {len(keys)} host keys of {host}, from {client.api_url}/meta")
    remote = f"ssh://git@{host}/{env.get('GITHUB_REPOSITORY', '')}.git"
    github.outputs({"remote": remote}, env)
    return EXIT_OK


def run_report(args: argparse.Namespace) -> int:
    accounts = [str(a) for a in _json_list(args.accounts, "--accounts")]
    carried = _json_list(args.prs, "--prs") or [{"number": args.pr, "status": "unknown"}]
    folders = reports.newest_attempts(Path(args.source), accounts, args.run_id)
    texts = reports.kept_reports(folders)
    results = reports.Results(reviewed=args.reviewed, apply=args.apply, save=args.save)
    footer = github.footer({**environment(), "RECONCILER_COMMIT": args.commit})
    with from_environment(environment()) as client:
        for pr in carried:
            text = reports.body(pr, carried, texts, results)
            client.post(
                client.repo(f"/issues/{pr['number']}/comments"),
                {"body": text[:64000] + f"\n\n{footer}\n"},
            )
            print(f"commented on #{pr['number']}")
    return EXIT_OK


def run_approved(args: argparse.Namespace) -> int:
    """A dispatched apply goes on only after a person approved its deployment to the
    environment ("Get the review history for a workflow run")."""
    env = environment()
    with from_environment(env) as client:
        history = client.get(client.repo(f"/actions/runs/{args.run_id}/approvals"))
    for review in history if isinstance(history, list) else []:
        names = {str(e.get("name")) for e in review.get("environments") or []}
        if review.get("state") == "approved" and args.environment in names:
            who = (review.get("user") or {}).get("login", "someone")
            print(f"approved for {args.environment} by {who}")
            return EXIT_OK
    raise Refused(
        f"nobody approved this run's deployment to {args.environment}: give the environment "
        "required reviewers (docs/gitops.md), or apply through a pull request"
    )


def register(commands: Commands) -> None:
    """Add ``ci`` and its actions to the top-level subcommands."""
    ci = commands.add_parser(
        "ci",
        help="the GitOps workflows' GitHub steps (comments, reviewed plans, state, reports)",
        description=(
            "Steps of the GitHub workflows, as commands: they talk to GitHub's REST API at "
            "GITHUB_API_URL with the job's token (GH_TOKEN) and write step outputs to "
            "GITHUB_OUTPUT. See docs/gitops.md."
        ),
    )
    actions = ci.add_subparsers(dest="ci_command", metavar="ACTION", required=True)

    def action(name: str, words: str, run: options.Run) -> argparse.ArgumentParser:
        return options.action(actions, name, words, run, ending=".")

    for actions_of in (_comment_actions, _apply_actions, _state_actions, _report_actions):
        actions_of(action)


def _author(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--author",
        default=comments.BOT,
        help="whose comments and issues are the workflow's own (default: %(default)s)",
    )


def _sha(text: str) -> str:
    if len(text) != 40 or any(c not in "0123456789abcdef" for c in text):
        raise argparse.ArgumentTypeError(f"expected a full 40-character commit SHA: {text!r}")
    return text


Action = Callable[[str, str, options.Run], argparse.ArgumentParser]


def _comment_actions(action: Action) -> None:
    merge = action(
        "merge", "write out the manifests a pull request would make on the base's tip", run_merge
    )
    merge.add_argument("--pr", type=int, required=True, help="the pull request's number")
    merge.add_argument("--head", type=_sha, required=True, help="its head SHA, from the event")
    merge.add_argument("--base", default="main", help="the base branch (default: %(default)s)")
    merge.add_argument("--manifests", default="manifests", help="the manifests folder")
    merge.add_argument("--into", required=True, metavar="DIR", help="where to write them")
    merge.add_argument("--url", help="the repository's URL (default: from GITHUB_* variables)")

    comment = action("comment", "post or update the pull request's plan comment", run_comment)
    comment.add_argument("--pr", type=int, required=True)
    comment.add_argument("--body", metavar="FILE", help="the comment, as markdown")
    comment.add_argument("--note", choices=sorted(NOTES), help="a canned note instead")
    comment.add_argument("--head", default="", help="the pull request's head (for --note)")
    _author(comment)

    stale = action("stale", "mark the plan comment stale after a failed plan", run_stale)
    stale.add_argument("--pr", type=int, required=True)
    stale.add_argument("--head", default="", help="the commit whose plan failed")
    stale.add_argument("--error", metavar="FILE", help="the failed step's stderr (redacted)")
    _author(stale)

    issue = action("issue", "open, update or close the issue of an alarm", run_issue)
    issue.add_argument("--label", required=True, help="the issue's label (drift, health)")
    issue.add_argument("--title", required=True)
    issue.add_argument("--body", metavar="FILE", help="the issue's body, as markdown")
    issue.add_argument("--status", type=int, help="the command's exit code (0, 1 or 2)")
    issue.add_argument(
        "--reports",
        metavar="DIR",
        help="instead of --body and --status: every shard's LABEL-I.md and LABEL-I.status "
        "in DIR, merged into one body (any drift opens or updates the issue; a shard that "
        "failed or kept nothing keeps it from closing)",
    )
    issue.add_argument("--expect", default="[]", help="with --reports: the shards' JSON list")
    issue.add_argument(
        "--shard-count", type=options.shard_count, help="with --reports: N, the shards in all"
    )
    issue.add_argument("--resolved", required=True, help="the comment that closes it")
    _author(issue)

    gather = action(
        "gather",
        "copy each shard's newest attempt (artifacts KIND-KEY-RUN-ATTEMPT, a folder each) "
        "into one folder",
        run_gather,
    )
    gather.add_argument("--from", dest="source", required=True, metavar="DIR")
    gather.add_argument("--kind", default="drift", help="the artifacts' prefix")
    gather.add_argument("--run-id", required=True)
    gather.add_argument("--into", required=True, metavar="DIR")

    busy = action("busy", "say whether a run of a workflow is not finished", run_busy)
    busy.add_argument("--workflow", default="apply.yml", help="its file name")


def _apply_actions(action: Action) -> None:
    find = action("find-plans", "fetch and prove the reviewed plans a run carries", run_find_plans)
    find.add_argument("--commit", type=_sha, required=True, help="the merged commit applied")
    find.add_argument("--pr", type=int, help="the merged pull request that started the run")
    find.add_argument("--base", default="main")
    find.add_argument("--manifests", default="manifests")
    find.add_argument("--plan-workflow", default=".github/workflows/plan.yml")
    find.add_argument("--into", required=True, metavar="DIR")
    find.add_argument("--wait", type=float, default=600.0, help="seconds to wait for a plan")

    apply = action("apply", "apply the carried plans to one account, once", run_apply)
    apply.add_argument("path", nargs="?", default="manifests")
    apply.add_argument("--account", required=True)
    apply.add_argument("--commit", type=_sha, required=True)
    apply.add_argument("--reviewed", required=True, metavar="DIR")
    apply.add_argument("--report", required=True, metavar="FILE")
    apply.add_argument(
        "--again",
        action="store_true",
        help="apply even if this commit was applied already (a manual run undoing drift)",
    )


def _state_actions(action: Action) -> None:
    save = action("save", "push each account's ledger from its newest apply attempt", run_save)
    save.add_argument("path", nargs="?", default="manifests")
    save.add_argument("--accounts", required=True, help="a JSON list of account names")
    save.add_argument("--from", dest="source", required=True, metavar="DIR")
    save.add_argument("--commit", type=_sha, required=True)
    save.add_argument("--run-id", required=True)
    save.add_argument("--branch", default=state_branch.DEFAULT_BRANCH)
    save.add_argument(
        "--remote",
        default=state_branch.DEFAULT_REMOTE,
        help="where the state branch is: a remote's name or a URL (with the state key, "
        "ssh://git@github.com/OWNER/REPO.git)",
    )
    options.state_guard(save, writes=True)

    hosts = action(
        "known-hosts",
        "write the SSH host keys GitHub publishes (GET /meta at GITHUB_API_URL, with GH_TOKEN) "
        "and output the repository's SSH URL (remote)",
        run_known_hosts,
    )
    hosts.add_argument("--out", required=True, metavar="FILE", help="the known_hosts to write")
    hosts.add_argument(
        "--host", help="the host (HOST or HOST:PORT; default: GITHUB_SERVER_URL's host)"
    )


def _report_actions(action: Action) -> None:
    report = action("report", "comment how the apply ended on each merged pull request", run_report)
    report.add_argument("--accounts", required=True, help="a JSON list of account names")
    report.add_argument("--prs", default="[]", help="find-plans' JSON list")
    report.add_argument("--pr", type=int, default=0, help="the merged pull request")
    report.add_argument("--from", dest="source", required=True, metavar="DIR")
    report.add_argument("--run-id", required=True)
    report.add_argument("--commit", default="")
    for job in ("reviewed", "apply", "save"):
        report.add_argument(f"--{job}", required=True, help=f"needs.{job}.result")

    approved = action("approved", "refuse unless a person approved this run", run_approved)
    approved.add_argument("--run-id", required=True)
    approved.add_argument("--environment", default="production")


__all__ = ["register"]
