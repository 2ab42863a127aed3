"""The sandbox's LiveKit SIP API, driven by LiveKit's official SDK (``livekit-api``), as
the reconciler will drive LiveKit itself: trunks and dispatch rules created, listed,
updated (whole and by field) and deleted, and LiveKit's refusals, with its codes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from livekit import api

from tests.sandboxes import Sandbox, running

SECRET = "lk_secret_0123456789abcdefghijklmn"  # 32 bytes and more, as HS256 wants


@pytest.fixture(scope="module")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    log = tmp_path_factory.mktemp("livekit") / "sandbox.log"
    with running("--livekit", f"lk_key:{SECRET}", log_path=log) as started:
        yield started


def run(sandbox: Sandbox, work: object) -> object:
    async def go() -> object:
        async with api.LiveKitAPI(sandbox.url, "lk_key", SECRET) as lk:
            return await work(lk)  # type: ignore[operator]

    return asyncio.run(go())


def test_inbound_and_outbound_trunks_round_trip_through_the_sdk(sandbox: Sandbox) -> None:
    async def work(lk: api.LiveKitAPI) -> tuple[object, ...]:
        inbound = await lk.sip.create_inbound_trunk(
            api.CreateSIPInboundTrunkRequest(
                trunk=api.SIPInboundTrunkInfo(
                    name="blr_bot",
                    numbers=["+918040264208"],
                    allowed_addresses=["44.248.146.11/32"],
                )
            )
        )
        outbound = await lk.sip.create_outbound_trunk(
            api.CreateSIPOutboundTrunkRequest(
                trunk=api.SIPOutboundTrunkInfo(
                    name="blr_bot_out",
                    address="pstn.in2.exotel.com:443",
                    transport=api.SIPTransport.SIP_TRANSPORT_TLS,
                    numbers=["+918040264208"],
                    auth_username="voice_ai_user",
                    auth_password="s3cret_pw",
                )
            )
        )
        listed = await lk.sip.list_inbound_trunk(
            api.ListSIPInboundTrunkRequest(trunk_ids=[inbound.sip_trunk_id])
        )
        changed = await lk.sip.update_inbound_trunk_fields(
            inbound.sip_trunk_id, numbers=["+918040264208", "+918040264209"], name="blr_bot_2"
        )
        replaced = await lk.sip.update_outbound_trunk(
            outbound.sip_trunk_id,
            api.SIPOutboundTrunkInfo(
                name="blr_bot_out", address="pstn.in4.exotel.com:443", numbers=["+918040264208"]
            ),
        )
        await lk.sip.delete_trunk(api.DeleteSIPTrunkRequest(sip_trunk_id=inbound.sip_trunk_id))
        after = await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
        return inbound, outbound, listed, changed, replaced, after

    inbound, outbound, listed, changed, replaced, after = run(sandbox, work)  # type: ignore[misc]
    assert inbound.sip_trunk_id.startswith("ST_")
    assert [t.sip_trunk_id for t in listed.items] == [inbound.sip_trunk_id]
    assert list(changed.numbers) == ["+918040264208", "+918040264209"]
    assert changed.name == "blr_bot_2"
    assert list(changed.allowed_addresses) == ["44.248.146.11/32"]  # untouched by the update
    assert replaced.sip_trunk_id == outbound.sip_trunk_id
    assert replaced.address == "pstn.in4.exotel.com:443"
    assert replaced.auth_username == ""  # a replace is the whole object
    assert inbound.sip_trunk_id not in [t.sip_trunk_id for t in after.items]


def test_livekits_refusals_come_back_with_its_codes(sandbox: Sandbox) -> None:
    async def attempt(call: object) -> api.TwirpError:
        async with api.LiveKitAPI(sandbox.url, "lk_key", SECRET) as lk:
            with pytest.raises(api.TwirpError) as refused:
                await call(lk)  # type: ignore[operator]
            return refused.value

    def refusal(call: object) -> api.TwirpError:
        return asyncio.run(attempt(call))

    open_trunk = refusal(
        lambda lk: lk.sip.create_inbound_trunk(
            api.CreateSIPInboundTrunkRequest(trunk=api.SIPInboundTrunkInfo(name="open"))
        )
    )
    assert (open_trunk.code, open_trunk.status) == ("invalid_argument", 400)
    assert "for security" in open_trunk.message
    uri = refusal(
        lambda lk: lk.sip.create_outbound_trunk(
            api.CreateSIPOutboundTrunkRequest(
                trunk=api.SIPOutboundTrunkInfo(
                    address="sip:pstn.in2.exotel.com;transport=tls", numbers=["+918040264208"]
                )
            )
        )
    )
    assert uri.code == "invalid_argument"
    assert "not a SIP URI" in uri.message
    missing = refusal(lambda lk: lk.sip.update_inbound_trunk_fields("ST_nothere", name="x"))
    assert (missing.code, missing.status) == ("not_found", 404)

    async def twice(lk: api.LiveKitAPI) -> None:
        for _ in range(2):
            await lk.sip.create_inbound_trunk(
                api.CreateSIPInboundTrunkRequest(
                    trunk=api.SIPInboundTrunkInfo(numbers=["+91 80 4026 4210"])
                )
            )

    conflict = refusal(twice)
    assert "Conflicting inbound SIP Trunks" in conflict.message


def test_dispatch_rules_through_the_sdk(sandbox: Sandbox) -> None:
    async def work(lk: api.LiveKitAPI) -> tuple[object, ...]:
        rule = await lk.sip.create_dispatch_rule(
            api.CreateSIPDispatchRuleRequest(
                dispatch_rule=api.SIPDispatchRuleInfo(
                    name="bot",
                    rule=api.SIPDispatchRule(
                        dispatch_rule_individual=api.SIPDispatchRuleIndividual(room_prefix="call-")
                    ),
                    trunk_ids=["ST_abc"],
                )
            )
        )
        listed = await lk.sip.list_dispatch_rule(api.ListSIPDispatchRuleRequest())
        changed = await lk.sip.update_dispatch_rule_fields(
            rule.sip_dispatch_rule_id, trunk_ids=["ST_abc", "ST_def"], name="bot_2"
        )
        assert list(changed.trunk_ids) == ["ST_abc", "ST_def"]
        assert changed.name == "bot_2"
        assert changed.rule.dispatch_rule_individual.room_prefix == "call-"  # kept
        await lk.sip.delete_dispatch_rule(
            api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=rule.sip_dispatch_rule_id)
        )
        with pytest.raises(api.TwirpError) as gone:
            await lk.sip.delete_dispatch_rule(
                api.DeleteSIPDispatchRuleRequest(sip_dispatch_rule_id=rule.sip_dispatch_rule_id)
            )
        return rule, listed, gone.value

    rule, listed, gone = run(sandbox, work)  # type: ignore[misc]
    assert rule.sip_dispatch_rule_id.startswith("SDR_")
    assert rule.sip_dispatch_rule_id in [r.sip_dispatch_rule_id for r in listed.items]
    assert gone.code == "not_found"


def test_a_wrong_secret_or_a_missing_grant_is_refused(sandbox: Sandbox) -> None:
    async def wrong() -> api.TwirpError:
        async with api.LiveKitAPI(sandbox.url, "lk_key", "x" * 32) as lk:
            with pytest.raises(api.TwirpError) as refused:
                await lk.sip.list_inbound_trunk(api.ListSIPInboundTrunkRequest())
            return refused.value

    assert asyncio.run(wrong()).status == 401
    token = (
        api.AccessToken("lk_key", SECRET)
        .with_identity("someone")
        .with_grants(api.VideoGrants(room_join=True, room="r"))
        .to_jwt()
    )
    plain = httpx.post(
        f"{sandbox.url}/twirp/livekit.SIP/ListSIPInboundTrunk",
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
        content=b"{}",
    )
    assert plain.status_code == 401
    assert json.loads(plain.text) == {"code": "unauthenticated", "msg": "permissions denied"}


def test_odd_requests_get_twirp_answers_not_tracebacks(sandbox: Sandbox) -> None:
    url = f"{sandbox.url}/twirp/livekit.SIP/ListSIPInboundTrunk"
    assert httpx.get(url).json()["code"] == "bad_route"
    odd = "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJsa19rZXkiLCJuYmYiOiJzb29uIn0.x"
    assert httpx.post(url, headers={"Authorization": f"Bearer {odd}"}).status_code == 401
    assert "Traceback" not in Path(sandbox.log_path).read_text()
