"""Both ends of a trunk from one manifest: a LiveKit partner planned, applied, checked for
drift and rotated with Exotel's end, by the real CLI against a sandbox that serves
Exotel's API and LiveKit's SIP API; LiveKit's side read and changed by hand through
LiveKit's official SDK, as a person would."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from livekit import api

from tests.estate import PASSWORD, environ
from tests.sandboxes import Sandbox, running

KEY, SECRET = "lk_key", "lk_secret_0123456789abcdefghijklmn"
NEW_PASSWORD = "Rotated_pw_4c1e0"
T = TypeVar("T")

ACCOUNTS = """\
accounts:
  demo:
    sid: demo
    api_key: ${EXOTEL_API_KEY}
    api_token: ${EXOTEL_API_TOKEN}
    signalling:
      host: pstn.in2.exotel.com
      addresses: [203.0.113.10, 203.0.113.11]
partners:
  blr_livekit:
    platform: livekit
    url: https://blr-voicebot.livekit.cloud
    api_key: ${LIVEKIT_API_KEY}
    api_secret: ${LIVEKIT_API_SECRET}
"""
TRUNK = """\
trunks:
  - name: blr_bot
    account: demo
    phone_numbers: ["+918040264208", "+918040264209"]
    whitelisted_ips: [44.248.146.11]
    destination_uris: ["blr-voicebot.sip.livekit.cloud:5061;transport=tls"]
    alias: "+918040264208"
    credentials:
      - username: bot_user
        password: ${SIP_PASSWORD}
        password_version: 1
    partner:
      name: blr_livekit
      dispatch: {agent: support-bot}
"""


@pytest.fixture
def sandbox(tmp_path: Path) -> Iterator[Sandbox]:
    with running("--livekit", f"{KEY}:{SECRET}", log_path=tmp_path / "sandbox.log") as started:
        yield started


def env(sandbox: Sandbox, **extra: str) -> dict[str, str]:
    livekit = {"LIVEKIT_URL": sandbox.url, "LIVEKIT_API_KEY": KEY, "LIVEKIT_API_SECRET": SECRET}
    return environ(sandbox, **{**livekit, **extra})


def reconciler(
    *args: str, cwd: Path, environment: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **environment},
        timeout=120,
        check=False,
    )


def write(folder: Path, trunk: str = TRUNK) -> Path:
    (folder / "manifests").mkdir(parents=True, exist_ok=True)
    (folder / "manifests" / "accounts.yaml").write_text(ACCOUNTS)
    (folder / "manifests" / "trunks.yaml").write_text(trunk)
    return folder


def on_livekit(sandbox: Sandbox, work: Callable[[api.LiveKitAPI], Awaitable[T]]) -> T:
    async def go() -> T:
        async with api.LiveKitAPI(sandbox.url, KEY, SECRET) as lk:
            return await work(lk)

    return asyncio.run(go())


def listed(sandbox: Sandbox) -> dict[str, list[Any]]:
    async def work(lk: api.LiveKitAPI) -> dict[str, list[Any]]:
        return {
            "inbound": list(
                (await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())).items
            ),
            "outbound": list(
                (await lk.sip.list_outbound_trunk(api.ListSIPOutboundTrunkRequest())).items
            ),
            "rules": list(
                (await lk.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())).items
            ),
        }

    return on_livekit(sandbox, work)


def applied(tmp_path: Path, sandbox: Sandbox, **extra: str) -> subprocess.CompletedProcess[str]:
    done = reconciler("apply", "--auto-approve", cwd=tmp_path, environment=env(sandbox, **extra))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Converged" in done.stdout
    return done


def saved_plan(
    tmp_path: Path, sandbox: Sandbox
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """``plan --out``: what it printed, and its actions' addresses in order."""
    planned = reconciler("plan", "--out", "plan.json", cwd=tmp_path, environment=env(sandbox))
    assert planned.returncode == 0, planned.stderr
    saved = json.loads((tmp_path / "plan.json").read_text())
    return planned, [action["address"] for action in saved["actions"]]


def test_one_plan_shows_both_ends_and_apply_builds_them(tmp_path: Path, sandbox: Sandbox) -> None:
    write(tmp_path)
    planned = reconciler("plan", "--out", "plan.json", cwd=tmp_path, environment=env(sandbox))
    assert planned.returncode == 0, planned.stderr
    lines = planned.stdout
    for address in (
        "demo/blr_bot/credential/bot_user",
        "demo/blr_bot/livekit_inbound_trunk/blr_livekit",
        "demo/blr_bot/livekit_dispatch_rule/blr_livekit",
        "demo/blr_bot/livekit_outbound_trunk/blr_livekit",
    ):
        assert f"+ {address}" in lines
    assert "auth_password (sensitive) version 1" in lines
    saved = json.loads((tmp_path / "plan.json").read_text())
    order = [action["address"] for action in saved["actions"]]
    credential = order.index("demo/blr_bot/credential/bot_user")
    inbound = order.index("demo/blr_bot/livekit_inbound_trunk/blr_livekit")
    assert credential < order.index("demo/blr_bot/livekit_outbound_trunk/blr_livekit")
    assert inbound < order.index("demo/blr_bot/livekit_dispatch_rule/blr_livekit")

    applied(tmp_path, sandbox)
    live = listed(sandbox)
    (inbound_trunk,) = live["inbound"]
    assert list(inbound_trunk.numbers) == ["+918040264208", "+918040264209"]
    assert list(inbound_trunk.allowed_addresses) == ["203.0.113.10", "203.0.113.11"]
    assert inbound_trunk.include_headers == api.SIPHeaderOptions.SIP_X_HEADERS
    (outbound,) = live["outbound"]
    assert outbound.address == "pstn.in2.exotel.com:443"
    assert outbound.transport == api.SIPTransport.SIP_TRANSPORT_TLS
    assert list(outbound.numbers) == ["+918040264208", "+918040264209"]
    assert (outbound.auth_username, outbound.auth_password) == ("bot_user", PASSWORD)
    (rule,) = live["rules"]
    assert list(rule.trunk_ids) == [inbound_trunk.sip_trunk_id]
    assert rule.rule.dispatch_rule_individual.room_prefix == "blr_bot-"
    assert [a.agent_name for a in rule.room_config.agents] == ["support-bot"]

    ledger = json.loads((tmp_path / "manifests" / "state" / "demo.json").read_text())
    owned = {key: entry["id"] for key, entry in ledger["partner_objects"].items()}
    assert owned == {
        "blr_bot/blr_livekit/inbound_trunk": inbound_trunk.sip_trunk_id,
        "blr_bot/blr_livekit/outbound_trunk": outbound.sip_trunk_id,
        "blr_bot/blr_livekit/dispatch_rule": rule.sip_dispatch_rule_id,
    }
    shown = reconciler("state", "show", "blr_bot", cwd=tmp_path, environment={})
    assert "  partner blr_livekit\n" in shown.stdout
    assert f"  blr_livekit inbound trunk {inbound_trunk.sip_trunk_id}\n" in shown.stdout
    again = reconciler("plan", "--detailed-exitcode", cwd=tmp_path, environment=env(sandbox))
    assert again.returncode == 0, again.stdout + again.stderr
    for text in (
        planned.stdout,
        again.stdout,
        json.dumps(ledger),
        (tmp_path / "plan.json").read_text(),
    ):
        assert PASSWORD not in text
        assert SECRET not in text


def test_drift_on_livekit_is_found_set_back_and_strangers_left_alone(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    write(tmp_path)
    applied(tmp_path, sandbox)
    inbound_id = listed(sandbox)["inbound"][0].sip_trunk_id

    async def by_hand(lk: api.LiveKitAPI) -> str:
        await lk.sip.update_inbound_trunk_fields(
            inbound_id, allowed_addresses=api.ListUpdate(add=["198.51.100.7"])
        )
        stranger = await lk.sip.create_inbound_trunk(
            api.CreateSIPInboundTrunkRequest(
                trunk=api.SIPInboundTrunkInfo(
                    name="by-hand", numbers=["08040264209"], allowed_addresses=["1.2.3.4"]
                )
            )
        )
        return stranger.sip_trunk_id

    stranger = on_livekit(sandbox, by_hand)
    drift = reconciler("drift", cwd=tmp_path, environment=env(sandbox))
    assert drift.returncode == 2, drift.stdout + drift.stderr
    assert "livekit_inbound_trunk blr_livekit changed by hand" in drift.stdout
    assert "198.51.100.7" in drift.stdout
    assert (
        f"LiveKit inbound trunk {stranger} (by-hand) on blr_livekit is not in this account's ledger"
        in drift.stdout
    )

    planned = reconciler("plan", cwd=tmp_path, environment=env(sandbox))
    assert "(drift)" in planned.stdout
    assert "also takes +918040264209, written 08040264209" in planned.stdout  # the seam
    applied(tmp_path, sandbox)
    live = {trunk.sip_trunk_id: trunk for trunk in listed(sandbox)["inbound"]}
    assert list(live[inbound_id].allowed_addresses) == ["203.0.113.10", "203.0.113.11"]
    assert list(live[stranger].numbers) == ["08040264209"]  # never touched


def test_a_password_rotation_spans_both_ends_in_order(tmp_path: Path, sandbox: Sandbox) -> None:
    write(tmp_path)
    applied(tmp_path, sandbox)
    write(tmp_path, TRUNK.replace("password_version: 1", "password_version: 2"))
    planned, order = saved_plan(tmp_path, sandbox)
    assert (
        "one change across both ends of blr_bot: credential bot_user set on Exotel, then "
        in planned.stdout
    )
    assert "auth_password (sensitive) version 1 -> (sensitive) version 2" in planned.stdout
    assert order == [
        "demo/blr_bot/credential/bot_user",
        "demo/blr_bot/livekit_outbound_trunk/blr_livekit",
    ]
    applied(tmp_path, sandbox, SIP_PASSWORD=NEW_PASSWORD)
    (outbound,) = listed(sandbox)["outbound"]
    assert outbound.auth_password == NEW_PASSWORD
    assert NEW_PASSWORD not in planned.stdout


def test_a_new_username_is_added_then_given_to_livekit_then_the_old_removed(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    write(tmp_path)
    applied(tmp_path, sandbox)
    write(tmp_path, TRUNK.replace("bot_user", "bot_user_2"))
    planned, order = saved_plan(tmp_path, sandbox)
    assert (
        "credential bot_user_2 set on Exotel, then LiveKit's outbound trunk on blr_livekit "
        "given it, then old credential bot_user removed from Exotel"
    ) in planned.stdout
    assert (
        order.index("demo/blr_bot/credential/bot_user_2")
        < order.index("demo/blr_bot/livekit_outbound_trunk/blr_livekit")
        < order.index("demo/blr_bot/credential/bot_user")
    )
    applied(tmp_path, sandbox)
    (outbound,) = listed(sandbox)["outbound"]
    assert outbound.auth_username == "bot_user_2"


def test_partner_none_removes_the_livekit_end(tmp_path: Path, sandbox: Sandbox) -> None:
    write(tmp_path)
    applied(tmp_path, sandbox)
    write(
        tmp_path,
        TRUNK.replace("name: blr_livekit\n      dispatch: {agent: support-bot}", "name: none"),
    )
    planned = reconciler("plan", cwd=tmp_path, environment=env(sandbox))
    assert planned.stdout.count("- demo/blr_bot/livekit_") == 3, planned.stdout
    applied(tmp_path, sandbox)
    assert listed(sandbox) == {"inbound": [], "outbound": [], "rules": []}
    ledger = json.loads((tmp_path / "manifests" / "state" / "demo.json").read_text())
    assert "partner_objects" not in ledger


def test_livekit_secrets_are_required_and_stay_home_in_ci(tmp_path: Path, sandbox: Sandbox) -> None:
    write(tmp_path)
    missing = reconciler("plan", cwd=tmp_path, environment=env(sandbox, LIVEKIT_API_SECRET=""))
    assert missing.returncode == 1
    assert "environment variable LIVEKIT_API_SECRET is set but empty" in missing.stderr
    ci = env(sandbox, GITHUB_ACTIONS="true", RECONCILER_ALLOWED_HOSTS="")
    ci["EXOTEL_BASE_URL"] = ""
    ci["LIVEKIT_URL"] = "http://lk.attacker.example:7880"
    refused = reconciler("plan", cwd=tmp_path, environment=ci)
    assert refused.returncode == 1
    assert (
        "refusing to send LiveKit API requests to http://lk.attacker.example:7880" in refused.stderr
    )


def test_validate_names_both_sides_of_a_seam_problem(tmp_path: Path) -> None:
    trunk = TRUNK.replace(
        "blr-voicebot.sip.livekit.cloud:5061;transport=tls", "lk.example.com:5061;transport=tcp"
    )
    write(tmp_path, textwrap.dedent(trunk))
    checked = reconciler("validate", cwd=tmp_path, environment={})
    assert checked.returncode == 0, checked.stdout
    assert (
        "trunk blr_bot sends calls to blr_livekit over tcp (destination "
        "lk.example.com:5061;transport=tcp) but blr_livekit calls Exotel over tls"
    ) not in checked.stdout  # the partner's transport follows the destination's
    assert (
        "uses port 5061, but LiveKit's SIP server (blr_livekit) takes tcp on 5060" in checked.stdout
    )


def test_import_records_the_livekit_end_a_team_already_has(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    write(tmp_path)
    applied(tmp_path, sandbox)
    ledger_file = tmp_path / "manifests" / "state" / "demo.json"
    ledger = json.loads(ledger_file.read_text())
    owned = ledger.pop("partner_objects")
    ledger_file.write_text(json.dumps(ledger))  # the ledger lost its LiveKit end

    async def hand_made(lk: api.LiveKitAPI) -> str:
        await lk.sip.delete_trunk(
            api.DeleteSIPTrunkRequest(sip_trunk_id=owned["blr_bot/blr_livekit/inbound_trunk"]["id"])
        )
        made = await lk.sip.create_inbound_trunk(
            api.CreateSIPInboundTrunkRequest(
                trunk=api.SIPInboundTrunkInfo(name="bot numbers", numbers=["+918040264208"])
            )
        )
        return made.sip_trunk_id

    made = on_livekit(sandbox, hand_made)
    before = reconciler("plan", cwd=tmp_path, environment=env(sandbox))
    assert f"LiveKit inbound trunk {made} (bot numbers) on blr_livekit is not in" in before.stdout
    imported = reconciler(
        "import", "--account", "demo", "--livekit-id", f"{made}=blr_bot",
        cwd=tmp_path, environment=env(sandbox),
    )  # fmt: skip
    assert imported.returncode == 0, imported.stdout + imported.stderr
    assert imported.stdout.splitlines()[0] == (
        f"recorded LiveKit inbound trunk {made} on blr_livekit as trunk blr_bot's"
    )  # only what was named
    planned = reconciler("plan", cwd=tmp_path, environment=env(sandbox))
    assert "~ demo/blr_bot/livekit_inbound_trunk/blr_livekit" in planned.stdout
    # The outbound trunk and the rule carry the trunk's mark: adopted, not made twice.
    assert "carries this trunk's mark but the ledger does not hold it" in planned.stdout
    assert (
        "auth_password (sensitive, not set by this tool) -> (sensitive) version 1" in planned.stdout
    )
    assert "is not in this account's ledger" not in planned.stdout
    assert "+ demo/blr_bot/livekit_" not in planned.stdout
    applied(tmp_path, sandbox)
    live = listed(sandbox)
    (inbound,) = live["inbound"]
    assert inbound.sip_trunk_id == made
    assert list(inbound.numbers) == ["+918040264208", "+918040264209"]
    assert [o.sip_trunk_id for o in live["outbound"]] == [
        owned["blr_bot/blr_livekit/outbound_trunk"]["id"]
    ]
    assert list(live["rules"][0].trunk_ids) == [made]


def test_a_ledger_that_lost_its_livekit_end_adopts_it_by_its_mark(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    write(tmp_path)
    applied(tmp_path, sandbox)
    before = listed(sandbox)
    ledger_file = tmp_path / "manifests" / "state" / "demo.json"
    ledger = json.loads(ledger_file.read_text())
    del ledger["partner_objects"]  # restored from before the LiveKit end was made, say
    ledger_file.write_text(json.dumps(ledger))
    planned = reconciler("plan", cwd=tmp_path, environment=env(sandbox))
    assert planned.stdout.count("carries this trunk's mark") == 3, planned.stdout
    applied(tmp_path, sandbox)
    assert {k: len(v) for k, v in listed(sandbox).items()} == dict.fromkeys(before, 1)
    again = reconciler("plan", "--detailed-exitcode", cwd=tmp_path, environment=env(sandbox))
    assert again.returncode == 0, again.stdout


def test_livekit_failures_say_livekit_and_a_protected_trunk_keeps_its_end(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    write(tmp_path, TRUNK.replace("    account: demo\n", "    account: demo\n    protect: true\n"))
    wrong = reconciler("plan", cwd=tmp_path, environment=env(sandbox, LIVEKIT_API_SECRET="x" * 40))
    assert wrong.returncode == 1
    assert wrong.stderr.startswith(
        "reconciler: partner blr_livekit: LiveKit refused the API key and secret (HTTP 401)"
    ), wrong.stderr
    assert "x" * 40 not in wrong.stderr
    elsewhere = reconciler(
        "plan", cwd=tmp_path, environment=env(sandbox, LIVEKIT_URL="ftp://lk.example.com")
    )
    assert "LIVEKIT_URL 'ftp://lk.example.com' must be a LiveKit project's URL" in elsewhere.stderr
    applied(tmp_path, sandbox)
    write(
        tmp_path,
        TRUNK.replace("    account: demo\n", "    account: demo\n    protect: true\n").replace(
            "name: blr_livekit\n      dispatch: {agent: support-bot}", "name: none"
        ),
    )
    refused = reconciler("apply", "--auto-approve", cwd=tmp_path, environment=env(sandbox))
    assert refused.returncode == 3, refused.stdout + refused.stderr
    assert "trunk blr_bot is protected: deleting its LiveKit inbound trunk" in refused.stderr
    assert len(listed(sandbox)["inbound"]) == 1


def test_a_create_whose_answer_was_lost_is_found_not_made_twice(tmp_path: Path) -> None:
    log = tmp_path / "sandbox.log"
    with running("--livekit", f"{KEY}:{SECRET}", "--hold-seconds", "0.3", log_path=log) as sandbox:
        write(tmp_path)
        sandbox.faults(
            {
                "method": "POST",
                "path": "/twirp/livekit.SIP/CreateSIPOutboundTrunk",
                "fault": "timeout_after_commit",
                "count": 1,
            }
        )
        applied(tmp_path, sandbox)
        assert sandbox.control("GET", "faults")["rules"][0]["count"] == 0  # the answer was lost
        (outbound,) = listed(sandbox)["outbound"]  # one, though its answer never came
        ledger = json.loads((tmp_path / "manifests" / "state" / "demo.json").read_text())
        assert ledger["partner_objects"]["blr_bot/blr_livekit/outbound_trunk"]["id"] == (
            outbound.sip_trunk_id
        )


def test_a_renamed_trunk_takes_its_livekit_end_with_it(tmp_path: Path, sandbox: Sandbox) -> None:
    """renamed_from: Exotel's trunk is renamed in place, and so is its LiveKit end (the
    ledger's keys and LiveKit's name and mark), never made a second time, which LiveKit
    would refuse for the same numbers."""
    write(tmp_path)
    applied(tmp_path, sandbox)
    before = listed(sandbox)
    renamed = TRUNK.replace(
        "  - name: blr_bot\n", "  - name: blr_agent\n    renamed_from: blr_bot\n"
    )
    write(tmp_path, renamed)
    planned = reconciler("plan", cwd=tmp_path, environment=env(sandbox))
    assert planned.returncode == 0, planned.stderr
    assert "+ demo/blr_agent/livekit_" not in planned.stdout, planned.stdout
    assert "- demo/blr_bot/livekit_" not in planned.stdout, planned.stdout
    assert planned.stdout.count("~ demo/blr_agent/livekit_") == 3, planned.stdout
    applied(tmp_path, sandbox)
    after = listed(sandbox)
    assert {k: [o.sip_trunk_id if k != "rules" else o.sip_dispatch_rule_id for o in v]
            for k, v in after.items()} == {
        k: [o.sip_trunk_id if k != "rules" else o.sip_dispatch_rule_id for o in v]
        for k, v in before.items()
    }  # fmt: skip
    assert after["inbound"][0].name == "exotel-blr_agent"
    ledger = json.loads((tmp_path / "manifests" / "state" / "demo.json").read_text())
    assert sorted(ledger["partner_objects"]) == [
        "blr_agent/blr_livekit/dispatch_rule",
        "blr_agent/blr_livekit/inbound_trunk",
        "blr_agent/blr_livekit/outbound_trunk",
    ]
    again = reconciler("plan", "--detailed-exitcode", cwd=tmp_path, environment=env(sandbox))
    assert again.returncode == 0, again.stdout


def test_a_second_object_with_a_trunks_mark_is_reported_not_hidden(
    tmp_path: Path, sandbox: Sandbox
) -> None:
    write(tmp_path)
    applied(tmp_path, sandbox)
    [ours] = listed(sandbox)["inbound"]

    async def copy(lk: api.LiveKitAPI) -> str:
        made = await lk.sip.create_inbound_trunk(
            api.CreateSIPInboundTrunkRequest(
                trunk=api.SIPInboundTrunkInfo(
                    name="a copy", numbers=["+918040264299"], metadata=ours.metadata
                )
            )
        )
        return made.sip_trunk_id

    made = on_livekit(sandbox, copy)
    planned = reconciler("plan", cwd=tmp_path, environment=env(sandbox))
    assert f"LiveKit inbound trunk {made} (a copy) on blr_livekit is not in" in planned.stdout


def test_import_never_takes_another_accounts_trunk_of_the_same_name() -> None:
    from reconciler.livekit.records import LiveObject, ObjectKind, metadata  # noqa: PLC0415
    from reconciler.manifests.seam import End  # noqa: PLC0415
    from reconciler.plan.livekit import owned_by  # noqa: PLC0415

    end = End.__new__(End)
    object.__setattr__(end, "account", "demo")
    object.__setattr__(end, "trunk", "t1")
    other = End.__new__(End)
    object.__setattr__(other, "account", "other")
    object.__setattr__(other, "trunk", "t1")

    def inbound(id_: str, mark: str, name: str = "exotel-t1") -> LiveObject:
        return LiveObject(ObjectKind.INBOUND_TRUNK, id_, {"name": name, "metadata": mark})

    theirs, mine = inbound("ST_a", metadata(other)), inbound("ST_b", metadata(end))
    assert owned_by(end, [theirs, mine]) == {ObjectKind.INBOUND_TRUNK: mine}
    assert owned_by(end, [theirs]) == {}  # their name is ours too, but their mark is not
    unmarked = inbound("ST_c", "")
    assert owned_by(end, [unmarked, mine]) == {ObjectKind.INBOUND_TRUNK: mine}  # mark first
    assert owned_by(end, [unmarked]) == {ObjectKind.INBOUND_TRUNK: unmarked}


@pytest.mark.parametrize(
    "key",
    [
        "blr_bot/other_partner/inbound_trunk",
        "blr_bot/blr_livekit/trunk",
        "blr_bot",
        "/blr_livekit/dispatch_rule",
    ],
)
def test_a_ledger_key_edited_by_hand_is_refused_with_what_is_right(
    tmp_path: Path, key: str
) -> None:
    from reconciler.errors import LedgerError  # noqa: PLC0415
    from reconciler.live import ledger as ledgers  # noqa: PLC0415

    path = tmp_path / "demo.json"
    document = {
        "format_version": 1,
        "account": "demo",
        "account_sid": "demo",
        "trunks": {},
        "partner_objects": {key: {"partner": "blr_livekit", "id": "ST_1"}},
    }
    path.write_text(json.dumps(document))
    with pytest.raises(LedgerError, match="must be keyed TRUNK/blr_livekit/KIND with KIND one of"):
        ledgers.read(path, account="demo", account_sid="demo")
    document["partner_objects"] = {
        "blr_bot/blr_livekit/inbound_trunk": {"partner": "blr_livekit", "id": "ST_1"}
    }
    path.write_text(json.dumps(document))
    assert ledgers.read(path, account="demo", account_sid="demo").partner_objects
