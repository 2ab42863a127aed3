"""Who may write the state branch: commits signed with the state key, refused otherwise.

Real git and OpenSSH's ssh-keygen sign and verify; a bare repository on disk stands in for
GitHub, reached over file paths and, for the push with the deploy key, over SSH from a
real sshd on loopback (tests/sshd.py) whose host key the GitHub double's ``/meta`` lists.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests import sshd
from tests.github_double import serving as github
from tests.test_state_branch import (
    BRANCH,
    GIT_ENV,
    clone,
    git,
    on_branch,
    origin,
    reconciler,
    write_ledger,
)

SIGNERS = ".github/reconciler-state.signers"


def run(
    cwd: Path, *args: str, key: Path | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """The CLI, with the state key's text in RECONCILER_STATE_KEY when ``key`` is given."""
    extra = {"RECONCILER_STATE_KEY": key.read_text()} if key else {}
    return reconciler(cwd, *args, **extra, **env)


def signed_origin(tmp_path: Path, *publics: str) -> Path:
    """The usual origin, with a signers file on main listing ``publics``."""
    remote = origin(tmp_path)
    seed = tmp_path / "seed"
    (seed / ".github").mkdir()
    lines = "".join(f"reconciler-state {' '.join(p.split()[:2])}\n" for p in publics)
    (seed / SIGNERS).write_text("# who may write reconciler-state\n" + lines)
    git(seed, "add", "-A")
    git(seed, "commit", "--quiet", "-m", "signers")
    git(seed, "push", "--quiet", "origin", "HEAD:main")
    return remote


def forge(remote: Path, tmp_path: Path, path: str, text: str, *sign_with: Path) -> str:
    """What anyone who can push a branch can do: commit a file onto reconciler-state."""
    work = tmp_path / "forger"
    if not work.exists():
        git(tmp_path, "clone", "--quiet", "--branch", BRANCH, str(remote), str(work))
    git(work, "pull", "--quiet", "origin", BRANCH)
    (work / path).write_text(text)
    git(work, "add", "-A")
    config = ["-c", "gpg.format=ssh", "-c", "commit.gpgsign=true"] if sign_with else []
    for path in sign_with:
        config += ["-c", f"user.signingkey={path}"]
    git(work, *config, "commit", "--quiet", "-m", "forged")
    git(work, "push", "--quiet", "origin", f"HEAD:{BRANCH}")
    return git(work, "rev-parse", "HEAD").strip()


def test_only_commits_signed_by_a_listed_key_are_read(tmp_path: Path) -> None:
    key, public = sshd.keypair(tmp_path, "state")
    other, _ = sshd.keypair(tmp_path, "other")
    remote = signed_origin(tmp_path, public)
    first = clone(remote, tmp_path / "first")
    write_ledger(first, "demo", "demo", "trmum1aaaa")
    head = git(first, "rev-parse", "HEAD").strip()

    # With a signers file, nothing is written without the state key...
    unkeyed = run(first, "state", "push", "--account", "demo", "--applied", head)
    assert unkeyed.returncode == 1
    assert "set RECONCILER_STATE_KEY" in unkeyed.stderr
    empty = run(first, "state", "push", "--account", "demo", RECONCILER_STATE_KEY="")
    assert "RECONCILER_STATE_KEY is set but empty" in empty.stderr
    # ...nor with a key the file does not list.
    unlisted = run(first, "state", "push", "--account", "demo", key=other)
    assert unlisted.returncode == 1
    assert "is not listed in" in unlisted.stderr
    assert not git(remote, "branch", "--list", BRANCH).strip()
    # The state key signs, and the branch reads back.
    pushed = run(first, "state", "push", "--account", "demo", "--applied", head, key=key)
    assert pushed.returncode == 0, pushed.stderr
    assert "G" in git(remote, "-c", f"gpg.ssh.allowedSignersFile={first / SIGNERS}",
                      "log", "-1", "--format=%G?", BRANCH)  # fmt: skip
    second = clone(remote, tmp_path / "second")
    assert run(second, "state", "pull", "--require-signed").returncode == 0
    assert (second / "manifests/state/demo.json.applied").read_text() == head + "\n"

    # Someone with write access marks a later merge applied, unsigned: refused, and the
    # working tree keeps what it had.
    marker = "manifests/state/demo.json.applied"
    tip = forge(remote, tmp_path, marker, "f" * 40 + "\n")
    refused = run(second, "state", "pull", "--force")
    assert refused.returncode == 1
    assert f"origin/{BRANCH} is at {tip[:12]}, and it is not signed" in refused.stderr
    assert "not trusted" in refused.stderr
    assert (second / marker).read_text() == head + "\n"
    # A push never builds on it either.
    again = run(first, "state", "push", "--account", "demo", key=key)
    assert again.returncode == 1
    assert "it is not signed" in again.stderr
    assert git(remote, "rev-parse", BRANCH).strip() == tip

    # Signed, but with a key the signers file does not list: refused too.
    tip = forge(remote, tmp_path, marker, "e" * 40 + "\n", other)
    other_key = run(second, "state", "pull", "--force")
    assert "signed by a key that is not in the signers file" in other_key.stderr
    assert "ssh-keygen -lf state-key.pub" in other_key.stderr  # or the file has a typo

    # Whoever holds the state key and checked the branch at a commit can vouch for it,
    # and for nothing newer.
    moved = run(first, "state", "sign", "--tip", "0123456", key=key)
    assert moved.returncode == 1
    assert f"is at {tip[:12]}, not 0123456: check that commit" in moved.stderr
    vouched = run(first, "state", "sign", "--tip", tip[:12], key=key)
    assert vouched.returncode == 0, vouched.stderr
    assert f"ledger of demo (manifests/state/demo.json): vouched for at {tip[:12]}" in (
        vouched.stdout
    )
    assert run(second, "state", "pull", "--force").returncode == 0
    assert on_branch(remote, marker) == "e" * 40 + "\n"
    signed = git(remote, "rev-parse", BRANCH).strip()
    twice = run(first, "state", "sign", "--tip", signed, key=key)
    assert twice.returncode == 1
    assert "is signed already: nothing to do" in twice.stderr

    # A broken ledger is never vouched for; the message names where it is.
    tip = forge(remote, tmp_path, "manifests/state/demo.json", "{not json")
    broken = run(first, "state", "sign", "--tip", tip, key=key)
    assert broken.returncode == 1
    assert f"{BRANCH}:manifests/state/demo.json" in broken.stderr
    assert "/tmp" not in broken.stderr.split("manifests/state/demo.json", 1)[1]
    assert git(remote, "rev-parse", BRANCH).strip() == tip


def test_the_signers_file_is_required_where_asked_and_read_strictly(tmp_path: Path) -> None:
    remote = origin(tmp_path)
    checkout = clone(remote, tmp_path / "checkout")
    required = run(checkout, "state", "pull", "--require-signed")
    assert required.returncode == 1
    assert ".github/reconciler-state.signers is missing" in required.stderr
    bad = tmp_path / "bad.signers"
    bad.write_text("# ok\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA\n")
    broken = run(checkout, "state", "pull", "--signers", str(bad))
    assert broken.returncode == 1
    assert f"{bad}:2: expected 'PRINCIPALS KEYTYPE KEY'" in broken.stderr
    # A typo in a key is named as one, not met later as "signed by another key".
    _, public = sshd.keypair(tmp_path, "state")
    kind, blob = public.split()[:2]
    for typo in (f"x {kind[:-1]} {blob}", f"x {kind} {blob[:5]}4{blob[6:]}"):
        bad.write_text(typo + "\n")
        said = run(checkout, "state", "pull", "--signers", str(bad)).stderr
        assert f"{bad}:1: " in said, said
        assert "public key (a typo?" in said
    bad.write_text("# nobody\n")
    assert "lists no key" in run(checkout, "state", "pull", "--signers", str(bad)).stderr
    missing = run(checkout, "state", "pull", "--signers", str(tmp_path / "nope"))
    assert "no such file" in missing.stderr
    assert "Traceback" not in broken.stderr + missing.stderr


def test_a_key_that_is_not_a_private_key_is_refused(tmp_path: Path) -> None:
    _, public = sshd.keypair(tmp_path, "state")
    remote = signed_origin(tmp_path, public)
    checkout = clone(remote, tmp_path / "checkout")
    write_ledger(checkout, "demo", "demo", "trmum1aaaa")
    wrong = run(checkout, "state", "push", "--account", "demo", RECONCILER_STATE_KEY=public)
    assert wrong.returncode == 1
    assert "RECONCILER_STATE_KEY holds a public key" in wrong.stderr
    assert public.split()[1] not in wrong.stderr + wrong.stdout
    key = tmp_path / "state"
    path = run(checkout, "state", "push", "--account", "demo", RECONCILER_STATE_KEY=str(key))
    assert "not its path" in path.stderr
    flat = key.read_text().strip().replace("\n", "\\n")
    literal = run(checkout, "state", "push", "--account", "demo", RECONCILER_STATE_KEY=flat)
    assert "holds a literal \\n" in literal.stderr
    assert flat[40:80] not in literal.stderr
    locked, _ = sshd.keypair(tmp_path, "locked")
    subprocess.run(["ssh-keygen", "-q", "-p", "-N", "secret", "-f", str(locked)], check=True)
    phrase = run(checkout, "state", "push", "--account", "demo", key=locked)
    assert "has a passphrase" in phrase.stderr


def test_the_deploy_key_pushes_over_ssh_to_the_host_github_publishes(tmp_path: Path) -> None:
    sshd.needs_sshd()
    key, public = sshd.keypair(tmp_path, "state")
    remote = signed_origin(tmp_path, public)
    checkout = clone(remote, tmp_path / "checkout")
    write_ledger(checkout, "demo", "demo", "trmum1aaaa")
    head = git(checkout, "rev-parse", "HEAD").strip()
    kept = checkout / "applied" / "apply-demo-77-1" / "manifests/state"
    kept.mkdir(parents=True)
    (kept / "demo.json").write_text((checkout / "manifests/state/demo.json").read_text())
    (kept.parent.parent / "report.md").write_text("<!-- reconciler-apply:demo:applied -->\n")
    with sshd.serving(tmp_path / "sshd", [public]) as server, github() as gh:
        env = {**gh.env(), **GIT_ENV, "RECONCILER_STATE_KEY": key.read_text()}
        hosts = run(checkout, "ci", "known-hosts", "--out", "known_hosts",
                    "--host", f"127.0.0.1:{server.port}", **env)  # fmt: skip
        assert hosts.returncode == 1  # the double lists no key yet: never an empty file
        assert "lists no SSH host keys" in hosts.stderr
        gh.state.ssh_keys = [server.host_key]
        hosts = run(checkout, "ci", "known-hosts", "--out", "known_hosts",
                    "--host", f"127.0.0.1:{server.port}", **env)  # fmt: skip
        assert hosts.returncode == 0, hosts.stderr
        save = ["ci", "save", "--accounts", '["demo"]', "--from", "applied", "--commit", head]
        save += ["--run-id", "77", "--remote", server.url(remote), "--require-signed"]
        saved = run(checkout, *save, "--known-hosts", "known_hosts", **env)
        assert saved.returncode == 0, saved.stdout + saved.stderr
        assert "pushed to reconciler-state" in saved.stdout
        assert on_branch(remote, "manifests/state/demo.json.applied") == head + "\n"

        # A server whose host key GitHub does not publish gets nothing.
        (checkout / "wrong_hosts").write_text(f"[127.0.0.1]:{server.port} {public}\n")
        (kept / "demo.json").write_text(
            (kept / "demo.json").read_text().replace("trmum1aaaa", "trmum1bbbb")
        )
        before = git(remote, "rev-parse", BRANCH)
        spoofed = run(checkout, *save, "--known-hosts", "wrong_hosts", **env)
        assert spoofed.returncode == 1
        assert "Host key verification failed" in spoofed.stdout + spoofed.stderr
        assert git(remote, "rev-parse", BRANCH) == before
    assert key.read_text().split("\n")[1] not in saved.stdout + saved.stderr + spoofed.stderr


@pytest.mark.parametrize("verdict", ["unsigned", "other"])
def test_apply_workflow_reads_refuse_a_forged_marker(tmp_path: Path, verdict: str) -> None:
    """The apply workflow pulls with --require-signed before it reads any marker: a forged
    one stops the run instead of skipping a merge as already applied."""
    key, public = sshd.keypair(tmp_path, "state")
    other, _ = sshd.keypair(tmp_path, "other")
    remote = signed_origin(tmp_path, public)
    first = clone(remote, tmp_path / "first")
    write_ledger(first, "demo", "demo", "trmum1aaaa")
    head = git(first, "rev-parse", "HEAD").strip()
    assert (
        run(first, "state", "push", "--account", "demo", "--applied", head, key=key).returncode == 0
    )
    forge(remote, tmp_path, "manifests/state/demo.json.applied", "f" * 40 + "\n",
          *([other] if verdict == "other" else []))  # fmt: skip
    pulled = run(first, "state", "pull", "--force", "--require-signed")
    assert pulled.returncode == 1
    assert "not trusted" in pulled.stderr


def test_signing_adds_to_the_git_configuration_already_there(tmp_path: Path) -> None:
    """The state key's settings come after the token's header for HTTPS remotes
    (GIT_CONFIG_*), never in place of it."""
    from reconciler.pipeline import state_signing  # noqa: PLC0415

    key, _ = sshd.keypair(tmp_path, "state")
    trust = state_signing.Trust(signers=None, key=key.read_text())
    token = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "http.https://github.com/.extraheader"}
    with state_signing.signing(trust, None, token) as signed:
        assert signed["GIT_CONFIG_COUNT"] == "3"
        assert {signed["GIT_CONFIG_KEY_1"], signed["GIT_CONFIG_KEY_2"]} == {
            "gpg.format",
            "user.signingkey",
        }
        assert "GIT_CONFIG_KEY_0" not in signed  # the token's entry stays as it was
