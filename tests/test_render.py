"""Plans rendered as text, markdown and JSON, checked against golden files.

The plan is built purely (models, hand-made live state, a ledger): no sandbox, so every
byte is reproducible. Set ``UPDATE_GOLDEN=1`` to rewrite the files after a deliberate
change, and read the diff before committing it.
"""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from reconciler import render
from reconciler.exotel.records import LiveCredential, LiveDestination, LiveNumber, LiveTrunk
from reconciler.live.ledger import Ledger, TrunkEntry, fingerprint
from reconciler.live.state import AccountState
from reconciler.manifests.models import TrunkSpec
from reconciler.plan.actions import Plan
from reconciler.plan.build import AccountInput, plan_account
from reconciler.plan.dids import did_notices

GOLDEN = Path(__file__).parent / "golden"
SID_BOT, SID_CC, SID_OLD, SID_STRANGER = (
    "trmum1bot0000000000000000000",
    "trmum1cc00000000000000000000",
    "trmum1old0000000000000000000",
    "trmum1stranger00000000000000",
)
DOMAIN = "ameyo5m.pstn.exotel.com"
DESIRED = """
- name: bot
  account: prod
  domain_name: ameyo5m.pstn.exotel.com
  phone_numbers: [{number: "+918040264208", mode: flow}, "+918040264210"]
  whitelisted_ips: [44.248.146.11]
  destination_uris: [44.248.146.11:5061;transport=tls]
  alias: "+918040264208"
  credentials: [{username: bot_user, password: "${SIP_PASSWORD}", password_version: 2}]
- name: cc
  account: prod
  domain_name: other.pstn.exotel.com
- name: new_trunk
  account: prod
  domain_name: ameyo5m.pstn.exotel.com
  whitelisted_ips: [13.126.40.0/24]
  destination_uris: [{uri: sbc.example.com:5061;transport=tls, priority: 1}]
"""


def build() -> Plan:
    desired = tuple(TrunkSpec.model_validate(raw) for raw in yaml.safe_load(DESIRED))
    bot = desired[0]
    ledger = Ledger(
        "prod",
        "ameyo5m",
        {
            "bot": TrunkEntry(SID_BOT, alias="+918040264208", credentials={"bot_user": 1},
                              fingerprint=fingerprint(bot)),
            "cc": TrunkEntry(SID_CC, fingerprint="sha256:older"),
            "old": TrunkEntry(SID_OLD),
        },
    )  # fmt: skip
    state = AccountState(
        account="prod",
        profile="full",
        trunks={
            SID_BOT: LiveTrunk(
                SID_BOT, "bot", "ANY-ANY", "ameyo5m.pstn.exotel.com",
                numbers={"+918040264208": LiveNumber("11", "pstn"),
                         "+918040264209": LiveNumber("12", "pstn")},
                ips={"44.248.146.11/32": "13"},
                destinations={"44.248.146.11:5061;transport=tls": LiveDestination("14", 0, 1)},
                credentials={"bot_user": LiveCredential("15", None)},
                alias="+918040264208", alias_read=True,
            ),
            SID_CC: LiveTrunk(SID_CC, "cc", "ANY-ANY", DOMAIN, alias_read=True),
            SID_OLD: LiveTrunk(SID_OLD, "old", "ANY-ANY", DOMAIN, alias_read=True),
        },
        listed={"bot": SID_BOT, "cc": SID_CC, "old": SID_OLD, "stranger": SID_STRANGER},
        calls=16,
    )  # fmt: skip
    account = AccountInput(name="prod", sid="ameyo5m", profile="full", prune=True, desired=desired)
    planned = plan_account(account, ledger, state)
    planned = did_notices(planned, {"+918040264210": SID_STRANGER}, ledger)
    return Plan((planned,))


FORMATS = {
    "plan.txt": render.text,
    "plan.colour.txt": lambda plan: render.text(plan, colour=True),
    "plan.md": render.markdown,
    "plan.json": render.json_text,
}


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_golden(name: str) -> None:
    got = FORMATS[name](build())
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        GOLDEN.mkdir(exist_ok=True)
        path.write_text(got)
    assert got == path.read_text()


def test_checksum_covers_what_apply_would_do() -> None:
    plan = build()
    document = json.loads(render.json_text(plan))
    assert document["format_version"] == 1
    assert document["checksum"] == plan.checksum
    assert document["checksum"] == build().checksum  # stable
    # Anything that changes an action changes the checksum; wording does not.
    first = plan.accounts[0]
    reworded = tuple(replace(action, reason="other words") for action in first.actions)
    assert Plan((replace(first, actions=reworded),)).checksum == plan.checksum
    retargeted = Plan((replace(first, actions=first.actions[1:]),))
    assert retargeted.checksum != plan.checksum


def test_no_changes_is_quiet() -> None:
    empty = Plan(())
    assert "No changes. Live state matches the manifests." in render.text(empty)
    assert "No changes." in render.markdown(empty)
    assert json.loads(render.json_text(empty))["actions"] == []


def test_markdown_never_exceeds_the_comment_limit() -> None:
    many = "\n".join(f'    - "+91804{i:07d}"' for i in range(3000))
    spec = TrunkSpec.model_validate(
        {"name": "big", "account": "prod", "domain_name": "a.pstn.exotel.com",
         "phone_numbers": [f"+91804{i:07d}" for i in range(3000)]}
    )  # fmt: skip
    del many
    state = AccountState("prod", "full", listed={})
    planned = plan_account(
        AccountInput(name="prod", sid="ameyo5m", profile="full", prune=False, desired=(spec,)),
        Ledger("prod", "ameyo5m"),
        state,
    )
    footer = "<sub>commit `abc1234` · [run 7](https://github.example/runs/7)</sub>"
    where = "the whole plan is in [run 7](https://github.example/runs/7)"
    document = render.markdown(Plan((planned,)), footer=footer, elsewhere=where)
    assert len(document) <= render.MARKDOWN_LIMIT
    assert document.startswith("<!-- reconciler-plan:prod -->")
    assert f"Too long for a comment, so it was cut here: {where}." in document
    assert document.endswith(footer + "\n")  # the commit and run survive the cut
    assert "3001 to create" in document


def test_any_markdown_body_is_bounded_with_its_footer() -> None:
    body = "\n".join(f"| row {n} | {'x' * 50} |" for n in range(3000))
    bounded = render.bounded(body, footer="FOOT", elsewhere="see the run", limit=10_000)
    assert len(bounded) <= 10_000
    assert bounded.endswith("FOOT\n")
    assert "see the run" in bounded
    assert render.bounded("short", footer="FOOT") == "short\nFOOT\n"


def test_text_and_markdown_tell_warnings_and_notes_by_one_rule() -> None:
    """Deletes, replacements, manual steps, rails, DIDs held elsewhere, unreadable and
    kept undeclared trunks are warnings in every format; unmanaged trunks, scope and
    profile are notes. Each line once."""
    plan = build()
    text = render.text(plan)
    warnings, _, notes = text.partition("Warnings:")[2].partition("Notes:")
    markdown = render.markdown(plan)
    block, _, rest = markdown.partition("> [!WARNING]")[2].partition("\n\n")
    md_notes = rest.partition("Notes:")[2].partition("<details>")[0]
    delete = next(a for a in plan.actions if a.kind == "delete")
    assert delete.address in warnings
    assert delete.address in block
    held = next(n for n in plan.notices if n.kind == "did_elsewhere")
    assert held.message in warnings
    assert render.escape(held.message) in block
    stranger = next(n for n in plan.notices if n.kind == "unmanaged")
    assert stranger.message in notes
    assert render.escape(stranger.message) in md_notes
    assert stranger.message not in warnings
    assert render.escape(stranger.message) not in block
    doubled = replace(plan.accounts[0], notices=plan.accounts[0].notices * 2)
    assert render.text(Plan((doubled,))).count(stranger.message) == 1


def test_trunk_notes_name_their_account_once_and_never_blame_refresh_changed() -> None:
    from reconciler.pipeline.planning import targeted  # noqa: PLC0415
    from reconciler.plan.actions import Notice, NoticeKind  # noqa: PLC0415

    first = build().accounts[0]
    skipped = Notice(
        NoticeKind.NOT_REFRESHED, "prod", "2 trunk(s) not refreshed (--refresh changed)"
    )
    first = replace(first, notices=(*first.notices, skipped))
    other = replace(
        first, account="other", notices=tuple(replace(n, account="other") for n in first.notices)
    )
    held = frozenset({"bot", "cc", "old", "new_trunk"})
    plan = Plan(
        (
            targeted(first, frozenset({"bot"}), held),
            targeted(other, frozenset({"bot"}), frozenset({"elsewhere"})),
        )
    )
    text = render.text(plan)
    assert "prod: --trunk bot: only these were looked at" in text
    assert "other: --trunk bot: none of them is in this account" in text
    assert "--refresh changed" not in text
    assert text.count("--trunk bot: only these") == 1


def test_a_stale_plan_refusal_tells_new_removed_and_unreviewed_accounts_apart() -> None:
    from reconciler.plan import reviewed  # noqa: PLC0415

    plan = build()
    document = json.loads(render.json_text(plan))
    delete = next(a for a in document["actions"] if a["operation"] == "delete_trunk")
    document["actions"].remove(delete)
    create = next(a for a in document["actions"] if a["operation"] == "create_trunk")
    document["actions"].append({**create, "address": "prod/gone"})
    other = replace(
        plan.accounts[0],
        account="other",
        actions=tuple(replace(a, account="other", address="other/x") for a in plan.actions[:1]),
    )
    verdict = reviewed.compare([document], Plan((*plan.accounts, other)))
    assert not verdict.accepted
    assert f"  - {delete['address']} (new since the plan was made)" in verdict.message
    assert "  + prod/gone (reviewed, no longer needed)" in verdict.message
    assert "other/x" not in verdict.message
    assert "accounts other: not in the reviewed plan (it covers prod)" in verdict.message
