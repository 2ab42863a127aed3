"""``--shard I/N``: many accounts spread over N jobs, each account in exactly one shard,
and in the same shard as other accounts come and go."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from reconciler.cli.main import build_parser, main
from reconciler.cli.options import shard
from reconciler.manifests.load import load
from reconciler.pipeline.accounts import choose, shard_of

NAMES = [f"acct{n:03d}" for n in range(200)]


@pytest.mark.parametrize("count", [1, 2, 3, 8, 256])
def test_every_account_is_in_exactly_one_shard(count: int) -> None:
    shards = [shard_of(name, count) for name in NAMES]
    assert all(1 <= found <= count for found in shards)
    if count <= 8:  # 200 accounts: every shard holds some, none holds most
        sizes = [shards.count(i) for i in range(1, count + 1)]
        assert min(sizes) > 0
        assert max(sizes) < 2 * len(NAMES) / count


def test_an_account_keeps_its_shard_as_others_come_and_go() -> None:
    before = {name: shard_of(name, 8) for name in NAMES[:100]}
    after = {name: shard_of(name, 8) for name in NAMES}  # a hundred more
    assert all(after[name] == shard for name, shard in before.items())
    # Pinned: a change of hash would move every account's ledger job and concurrency group.
    assert [shard_of(name, 8) for name in ("acct000", "acct001", "prod", "staging")] == [2, 6, 7, 5]


@pytest.mark.parametrize(
    ("written", "said"),
    [
        ("2", "write I/N, like 2/8"),
        ("0/4", "I from 1 to N"),
        ("5/4", "I from 1 to N"),
        ("1/257", "N from 1 to 256"),
        ("a/b", "write I/N"),
    ],
)
def test_a_malformed_shard_says_what_is_right(written: str, said: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=said):
        shard(written)
    assert shard("3/8") == (3, 8)


@pytest.mark.parametrize("command", ["plan", "apply", "drift"])
def test_plan_apply_and_drift_take_a_shard(command: str) -> None:
    parsed = build_parser().parse_args([command, "--shard", "2/4"])
    assert parsed.shard == (2, 4)


def test_the_shards_of_an_estate_cover_it_once(tmp_path: Path) -> None:
    names = [f"acct{n:02d}" for n in range(12)]
    accounts = "".join(
        f"  {name}:\n    sid: {name}\n    api_key: ${{KEY}}\n    api_token: ${{TOKEN}}\n"
        for name in names
    )
    (tmp_path / "accounts.yaml").write_text("accounts:\n" + accounts)
    manifests = load(tmp_path)
    environ = {"KEY": "k", "TOKEN": "t"}
    seen: list[str] = []
    for index in range(1, 5):
        chosen = choose(manifests, [], environ, passwords=False, shard=(index, 4))
        seen += [account.name for account in chosen]
    assert sorted(seen) == names
    named = choose(manifests, ["acct03", "acct04"], environ, shard=(1, 2))
    assert [account.name for account in named] == ["acct03"]  # acct04 is shard 2's


def test_a_shard_with_no_account_says_so_and_does_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "accounts.yaml").write_text(
        "accounts:\n  demo:\n    sid: demo\n    api_key: ${KEY}\n    api_token: ${TOKEN}\n"
    )
    empty = 3 - shard_of("demo", 2)  # the other shard of two
    assert main(["drift", str(tmp_path), "--shard", f"{empty}/2"]) == 0
    said = capsys.readouterr()
    assert said.err == f"reconciler: --shard {empty}/2 holds none of the accounts: nothing to do\n"
    assert "No drift" in said.out


def test_validate_lists_the_shards_that_hold_accounts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A workflow's matrix: only the shards that hold an account get a job."""
    names = [f"acct{n:02d}" for n in range(5)]
    accounts = "".join(
        f"  {name}:\n    sid: {name}\n    api_key: ${{KEY}}\n    api_token: ${{TOKEN}}\n"
        for name in names
    )
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "accounts.yaml").write_text("accounts:\n" + accounts)
    output = tmp_path / "github_output"
    monkeypatch.setenv("GITHUB_OUTPUT", str(output))
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(tmp_path / "summary"))
    assert main(["validate", str(tmp_path / "m"), "--github", "--shards", "16"]) == 0
    held = sorted({shard_of(name, 16) for name in names})
    written = output.read_text()
    assert f"\n{json.dumps(held)}\n" in written
    assert "\n16\n" in written.split("shard_count<<", 1)[1]
    assert f"5 accounts in {len(held)} of 16 shards" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        build_parser().parse_args(["validate", "--shards", "257"])
    monkeypatch.delenv("GITHUB_ACTIONS", raising=False)
    assert main(["validate", str(tmp_path / "m"), "--shards", "16"]) == 0  # no --github
    assert f"5 accounts in {len(held)} of 16 shards" in capsys.readouterr().out


def test_state_moves_only_a_shards_ledgers(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "accounts.yaml").write_text(
        "accounts:\n  demo:\n    sid: demo\n    api_key: ${KEY}\n    api_token: ${TOKEN}\n"
    )
    empty = 3 - shard_of("demo", 2)
    for action in ("pull", "push"):
        assert main(["state", action, str(tmp_path), "--shard", f"{empty}/2"]) == 0
        assert f"--shard {empty}/2 holds none of the accounts" in capsys.readouterr().err
