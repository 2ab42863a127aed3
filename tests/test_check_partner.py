"""``reconciler check`` knows a trunk's partner: a LiveKit end answers OPTIONS with 200
whatever its trunks say (livekit/sip issue 764), so the INVITE is the check, dressed as
Exotel's and judged as LiveKit answers (``checking.livekit``).

The fast tests judge answers built by hand, one per row of docs/checking.md's table. The
slow ones (named in tests/tiers.py) put SIPp on loopback answering as livekit/sip does
(``tests/sip/livekit_*.xml``: its codes, reason phrases and order, 180 re-sent every
second while it waits for an agent, silence when it drops a call) and run the pipeline
against it, and the CLI as a subprocess for one.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from reconciler.checking import livekit, report
from reconciler.checking.results import (
    NO_ANSWER,
    Answer,
    Destination,
    Partner,
    Result,
    Ringing,
)
from reconciler.manifests.load import load
from reconciler.pipeline import checking
from reconciler.pipeline.checking import CheckOptions
from tests import sipservers
from tests.sipservers import sipp_uas

DID = "+918040264208"
HOST = "lk.example.test"
LK = Partner("blr_livekit", "livekit", "demo.pstn.exotel.com", agent="inbound-bot")
GUARDED = Partner(
    "blr_livekit",
    "livekit",
    "demo.pstn.exotel.com",
    exotel_addresses=("203.0.113.10", "198.51.100.0/28"),
)


# -- the judgement, answer by answer (fast) ------------------------------------------------


def judged(
    code: int | None,
    reason: str,
    *,
    partner: Partner = LK,
    transport: str = "tcp",
    codec: str | None = None,
    provisionals: tuple[int, ...] = (100,),
    ended: str = "acknowledged",
    srtp: bool | None = None,
    source: str | None = None,
) -> Result:
    port = 5061 if transport == "tls" else 5060
    destination = Destination(
        "demo", "voicebot", f"{HOST}:{port};transport={transport}", 0, 1, 1.0, partner
    )
    result = Result(destination)
    rang = next((c for c in reversed(provisionals) if c > 100), None)
    ringing = Ringing(DID, code, reason, codec, rang, ended, provisionals, srtp, source)
    livekit.judge(result, ringing, partner)
    return result


def said(result: Result) -> str:
    return " | ".join(f"{f.severity}: {f.message}" for f in result.findings)


BOTH_ENDS = f"INVITE to {DID} (Exotel trunk voicebot -> LiveKit partner blr_livekit)"


@pytest.mark.parametrize(
    ("code", "reason", "state", "expected"),
    [
        (404, "No trunk found", "down", ["no inbound trunk of blr_livekit", "E.164", "issue 278"]),
        (404, "Does not match any SIP Trunks", "down", ["no inbound trunk", "allowed_addresses"]),
        (404, "Does not match Trunks or Dispatch Rules", "down", ["no dispatch rule does"]),
        (404, "Not Found", "down", ["not LiveKit's words for it", "E.164"]),
        (407, "Unauthorized", "down", ["auth_username", "without any"]),
        (401, "Bad credentials", "down", ["digest credentials"]),
        (403, "Forbidden", "down", ["sends no 403", "address"]),
        (400, "", "down", ["400 without a reason phrase", "SIP_MEDIA_ENCRYPT_REQUIRE"]),
        (400, "Bad request", "down", ["could not read the INVITE"]),
        (488, "Not Acceptable Here", "down", ["no codec or encryption", "PCMA"]),
        (486, "Rejected", "down", ["the agent inbound-bot", "ringing_timeout"]),
        (503, "Try again later", "down", ["Multiple SIP Trunks matched"]),
        (503, "Service temporarily unavailable", "down", ["quota"]),
        (500, "Internal Server Error", "down", ["would fail"]),
    ],
)
def test_a_final_refusal_names_the_cause_on_livekits_side(
    code: int, reason: str, state: str, expected: list[str]
) -> None:
    result = judged(code, reason)
    assert result.state == state
    [finding] = result.findings
    assert finding.message.startswith(f"{BOTH_ENDS}: {code} {reason}".rstrip())
    for part in expected:
        assert part in finding.message, finding.message


def test_over_tls_a_codec_refusal_points_at_codecs_not_at_plain_rtp() -> None:
    message = said(judged(400, "", transport="tls"))
    assert "refuses Exotel's SRTP" in message
    assert "REQUIRE" not in message


@pytest.mark.parametrize(
    ("provisionals", "ended", "state", "expected"),
    [
        ((100,), "cancelled", "down", "LiveKit went silent after 100 Processing"),
        ((100, 180), "cancelled", "down", "rang once and went silent"),
        ((100, 180, 180, 180), "cancelled", "warning", "it rang 3 times"),
        ((), "no answer", "down", "says nothing at all"),
        ((100,), "no answer", "down", "would fail"),  # the connection closed mid-call
    ],
)
def test_no_final_answer_is_read_from_what_came_before_the_silence(
    provisionals: tuple[int, ...], ended: str, state: str, expected: str
) -> None:
    reason = NO_ANSWER if not provisionals else "the far end closed the connection"
    if ended == "cancelled":
        reason = "rang (180) without an answer within 2 s"
    result = judged(None, reason, provisionals=provisionals, ended=ended)
    assert result.state == state
    assert expected in said(result)
    assert BOTH_ENDS in said(result)


@pytest.mark.parametrize("code", [404, None, 403])
@pytest.mark.parametrize(
    ("source", "state", "expected"),
    [
        ("192.0.2.7", "warning", "Inconclusive from here: the test call came from 192.0.2.7, "),
        (None, "warning", "Inconclusive from here: the test call came from this machine, not "),
        ("203.0.113.10", "down", "The test call came from 203.0.113.10, which "),
        ("198.51.100.5", "down", "The test call came from 198.51.100.5, which "),  # in the /28
        ("::ffff:203.0.113.10", "down", "The test call came from ::ffff:203.0.113.10, which "),
    ],
)
def test_a_refusal_the_source_address_may_explain_depends_on_where_the_call_came_from(
    code: int | None, source: str | None, state: str, expected: str
) -> None:
    """The test call comes from this machine, not from Exotel: when the partner should
    allow only Exotel's signalling addresses, a 'no trunk', a drop or a 403 may be that
    alone (a warning), unless this machine's address is one of them (an error)."""
    reason = "No trunk found" if code else "x"
    result = judged(code, reason, partner=GUARDED, ended="cancelled", source=source)
    assert result.state == state, said(result)
    assert expected in said(result)
    assert "203.0.113.10, 198.51.100.0/28, signalling.addresses" in said(result)
    if state == "down":
        assert "Inconclusive" not in said(result)
        assert "Exotel's calls from there would be refused alike" in said(result)


def test_without_signalling_addresses_a_refusal_stands_wherever_the_call_came_from() -> None:
    result = judged(404, "No trunk found", source="192.0.2.7")
    assert result.state == "down"
    assert "signalling.addresses" not in said(result)
    assert "Inconclusive" not in said(result)


@pytest.mark.parametrize(
    ("source", "covered"),
    [
        ("203.0.113.10", True),
        ("203.0.113.11", False),
        ("198.51.100.0", True),
        ("198.51.100.15", True),
        ("198.51.100.16", False),
        ("::ffff:198.51.100.1", True),  # IPv4 mapped into IPv6
        ("::1", False),
        ("fe80::1%eth0", False),
        ("not an address", False),
    ],
)
def test_which_sources_the_signalling_addresses_cover(source: str, covered: bool) -> None:
    assert livekit.covers(("203.0.113.10", "198.51.100.0/28"), source) is covered


def test_an_answer_with_g711_is_up_and_anything_else_is_not() -> None:
    assert judged(200, "OK", codec="PCMU", ended="hung up").findings == []
    assert judged(200, "OK", codec="G722", ended="hung up").state == "down"
    plain = judged(200, "OK", codec="PCMA", ended="hung up", transport="tls", srtp=False)
    assert plain.state == "warning"
    assert "SIP_MEDIA_ENCRYPT_ALLOW" in said(plain)
    secured = judged(200, "OK", codec="PCMA", ended="hung up", transport="tls", srtp=True)
    assert secured.findings == []


def test_options_from_livekit_proves_only_that_it_runs() -> None:
    destination = Destination("demo", "voicebot", f"{HOST}:5060;transport=tcp", 0, 1, 1.0, LK)
    result = Result(destination, answer=Answer(200, "OK", None, 1.0))
    livekit.options(result, LK, invited=False)
    [note] = result.findings
    assert note.severity == "note"
    assert "issue 764" in note.message
    assert "check --invite" in note.message
    invited = Result(destination, answer=Answer(200, "OK", None, 1.0))
    livekit.options(invited, LK, invited=True)
    assert "the test call is the check" in said(invited)
    refused = Result(destination, answer=Answer(403, "Forbidden", None, 1.0))
    livekit.options(refused, LK, invited=False)
    assert refused.findings == []


# -- manifests: which trunk has which partner (fast) ---------------------------------------


def manifests(folder: Path, uri: str, *, addresses: Sequence[str] = (), extra: str = "") -> Path:
    """An account whose default partner is LiveKit (with Exotel's signalling
    ``addresses``, if any), a Kamailio partner, and trunks."""
    folder.mkdir(parents=True, exist_ok=True)
    listed = ", ".join(addresses)
    signalling = f"    signalling:\n      addresses: [{listed}]\n" if addresses else ""
    (folder / "accounts.yaml").write_text(
        "accounts:\n  demo:\n    sid: demo\n    api_key: ${EXOTEL_API_KEY}\n"
        "    api_token: ${EXOTEL_API_TOKEN}\n    partner: blr_livekit\n" + signalling
    )
    (folder / "partners.yaml").write_text(
        textwrap.dedent("""\
            partners:
              blr_livekit:
                platform: livekit
                url: https://example.livekit.cloud
                api_key: ${LIVEKIT_API_KEY}
                api_secret: ${LIVEKIT_API_SECRET}
              edge:
                platform: kamailio
            """)
    )
    (folder / "trunks.yaml").write_text(
        textwrap.dedent(f"""\
            trunks:
              - name: voicebot
                account: demo
                phone_numbers: ["{DID}"]
                destination_uris: ["{uri}"]
                partner:
                  name: blr_livekit
                  dispatch: {{agent: inbound-bot}}
            """)
        + textwrap.indent(textwrap.dedent(extra), "  ")
    )
    return folder


def test_each_trunk_gets_its_own_or_its_accounts_partner(tmp_path: Path) -> None:
    folder = manifests(
        tmp_path,
        f"{HOST}:5060;transport=tcp",
        extra=f"""\
            - name: sbc
              account: demo
              destination_uris: ["{HOST}:5070;transport=tcp"]
              partner: edge
            - name: inherits
              account: demo
              destination_uris: ["{HOST}:5060;transport=tcp"]
            - name: bare
              account: demo
              destination_uris: ["{HOST}:5080;transport=tcp"]
              partner: none
            """,
    )
    loaded = load(folder)
    assert not loaded.errors, loaded.errors
    found = checking.partners(loaded)
    assert found[("demo", "voicebot")] == Partner(
        "blr_livekit", "livekit", "demo.pstn.exotel.com", (), "inbound-bot"
    )
    assert found[("demo", "inherits")].platform == "livekit"
    assert found[("demo", "sbc")].platform == "kamailio"
    assert ("demo", "bare") not in found


# -- on the wire: SIPp answering as LiveKit (slow) -----------------------------------------


def run_check(folder: Path, *, invite: bool = True, port: int) -> list[report.TrunkReport]:
    options = CheckOptions(timeout=2.0, resolve={(HOST, port): "127.0.0.1"}, invite=invite)
    return asyncio.run(checking.check(load(folder), accounts=[], options=options))


@pytest.fixture
def livekit_like(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[sipservers.Sipp]:
    with sipp_uas(tmp_path / "sipp", request.param) as uas:
        yield uas


# What this machine's test call from 127.0.0.1 may prove depends on the account's
# signalling addresses: none listed, the trunk allows any address; listed and covering
# 127.0.0.1 (the sandbox's case), a refusal is Exotel's too.
LOOPBACK = ("127.0.0.1",)
LOOPBACK_NET = ("203.0.113.10", "127.0.0.0/8")


@pytest.mark.parametrize(
    ("livekit_like", "addresses", "state", "expected"),
    [
        ("livekit_no_trunk", (), "down", "404 No trunk found: no inbound trunk of blr_livekit"),
        ("livekit_no_trunk", LOOPBACK, "down", "came from 127.0.0.1, which Exotel's signalling"),
        ("livekit_flood", (), "down", "LiveKit went silent after 100 Processing"),
        ("livekit_flood", LOOPBACK_NET, "down", "127.0.0.0/8, signalling.addresses) cover"),
        ("livekit_no_rule", (), "down", "rang once and went silent"),
        ("livekit_no_agent", (), "warning", "the agent inbound-bot did not answer in time"),
        ("livekit_rejected", (), "down", "486 Rejected: blr_livekit took the call"),
        ("livekit_digest", (), "down", "407 Unauthorized: blr_livekit's inbound trunk"),
        ("livekit_forbidden", (), "down", "403 Forbidden: LiveKit's SIP server sends no 403"),
        ("livekit_forbidden", LOOPBACK, "down", "would be refused alike"),
        ("livekit_media", (), "down", "400: a 400 without a reason phrase"),
        ("livekit_488", (), "down", "488 Not Acceptable Here: LiveKit found no codec"),
    ],
    indirect=["livekit_like"],
)
def test_livekits_answers_on_the_wire(
    tmp_path: Path,
    livekit_like: sipservers.Sipp,
    addresses: tuple[str, ...],
    state: str,
    expected: str,
) -> None:
    uri = f"{HOST}:{livekit_like.port};transport=tcp"
    folder = manifests(tmp_path / "manifests", uri, addresses=addresses)
    [trunk] = run_check(folder, port=livekit_like.port)
    [result] = trunk.results
    assert result.state == state, said(result)
    [finding] = [f.message for f in result.findings if f.severity != "note"]
    assert finding.startswith(BOTH_ENDS)
    assert expected in finding
    assert "Inconclusive" not in finding
    assert "the test call is the check" in said(result)  # OPTIONS said 200, proving nothing
    assert result.invite is not None
    assert result.invite.did == DID
    assert result.invite.source == "127.0.0.1"
    if livekit_like.scenario.stem == "livekit_no_agent":
        assert result.invite.provisionals.count(180) >= 2


@pytest.mark.parametrize("livekit_like", ["livekit_answer"], indirect=True)
def test_the_test_call_is_dressed_as_exotels_and_hung_up(
    tmp_path: Path, livekit_like: sipservers.Sipp
) -> None:
    """What LiveKit received: Exotel's From (the caller at the account's domain, which
    LiveKit's allowed_addresses may match), P-Asserted-Identity, X-Exotel-* headers and
    the route's; then ACK and BYE after its 200."""
    folder = manifests(tmp_path / "manifests", f"{HOST}:{livekit_like.port};transport=tcp")
    (folder / "routes.yaml").write_text(
        textwrap.dedent(f"""\
            routes:
              - did: "{DID}"
                account: demo
                default:
                  trunk: voicebot
                  custom_params:
                    X-Campaign: diwali
            """)
    )
    [trunk] = run_check(folder, port=livekit_like.port)
    [result] = trunk.results
    assert result.state == "up", said(result)
    assert result.invite is not None
    assert (result.invite.code, result.invite.codec, result.invite.ended) == (
        200,
        "PCMA",
        "hung up",
    )
    seen = livekit_like.messages.read_text(errors="replace")
    invite = seen[seen.index("INVITE sip:") :]
    invite = invite[: invite.index("\n\n")] if "\n\n" in invite else invite
    assert f"INVITE sip:{DID}@{HOST}:{livekit_like.port};transport=tcp SIP/2.0" in invite
    assert 'From: "+910000000000" <sip:+910000000000@demo.pstn.exotel.com>;tag=' in invite
    assert "P-Asserted-Identity: <sip:+910000000000@demo.pstn.exotel.com>" in invite
    assert "X-Exotel-CallSid: reconciler-check-" in invite
    assert "X-Exotel-LegSid: reconciler-check-" in invite
    assert "X-Campaign: diwali" in invite
    assert "ACK sip:" in seen
    assert "BYE sip:" in seen


@pytest.mark.parametrize("livekit_like", ["livekit_no_trunk", "livekit_flood"], indirect=True)
def test_from_a_machine_exotels_addresses_exclude_a_404_is_inconclusive(
    tmp_path: Path, livekit_like: sipservers.Sipp
) -> None:
    """From 127.0.0.1, outside the account's signalling addresses (an address and a
    network): LiveKit may refuse the call for its address alone, so the refusal (a 404,
    or a drop) is a warning that names where the call came from. The address is the
    INVITE's own connection's local address (``Ringing.source``), in the JSON too."""
    folder = manifests(
        tmp_path / "manifests",
        f"{HOST}:{livekit_like.port};transport=tcp",
        addresses=("203.0.113.10", "198.51.100.0/28"),
    )
    [trunk] = run_check(folder, port=livekit_like.port)
    [result] = trunk.results
    assert result.state == "warning", said(result)
    assert (
        "Inconclusive from here: the test call came from 127.0.0.1, which Exotel's signalling "
        "addresses (203.0.113.10, 198.51.100.0/28, signalling.addresses) do not cover"
    ) in said(result)
    assert result.document()["invite"]["source"] == "127.0.0.1"


@pytest.mark.parametrize("livekit_like", ["busy_486"], indirect=True)
def test_another_partners_answer_is_judged_as_before(
    tmp_path: Path, livekit_like: sipservers.Sipp
) -> None:
    """A Kamailio partner's 486 is what it always was: reachable, the call refused; and
    its OPTIONS proves what it always did (no LiveKit note)."""
    uri = f"{HOST}:{livekit_like.port};transport=tcp"
    folder = manifests(
        tmp_path / "manifests",
        f"{HOST}:5060;transport=tcp",
        extra=f"""\
            - name: sbc
              account: demo
              phone_numbers: ["+918040264209"]
              destination_uris: ["{uri}"]
              partner: edge
            """,
    )
    options = CheckOptions(
        timeout=2.0,
        resolve={(HOST, livekit_like.port): "127.0.0.1"},
        invite=True,
        trunks=frozenset({"sbc"}),
    )
    [trunk] = asyncio.run(checking.check(load(folder), accounts=[], options=options))
    [result] = trunk.results
    assert result.state == "warning"
    assert said(result) == (
        "warning: INVITE to +918040264209: 486 Busy Here: reachable, but the call was refused"
    )


@pytest.mark.parametrize("livekit_like", ["livekit_no_trunk"], indirect=True)
def test_the_cli_explains_livekits_answer(tmp_path: Path, livekit_like: sipservers.Sipp) -> None:
    """reconciler check, as a subprocess: without --invite the LiveKit destination is up
    but said to prove nothing; with it, the 404 is explained, naming both ends."""
    port = livekit_like.port
    manifests(tmp_path / "manifests", f"{HOST}:{port};transport=tcp")

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                *(sys.executable, "-m", "reconciler", "check"),
                *(f"--resolve={HOST}:{port}:127.0.0.1", "--timeout=2", *args),
            ],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=dict(os.environ),
            timeout=120,
            check=False,
        )

    plain = cli()
    assert plain.returncode == 0, plain.stdout + plain.stderr
    assert "voicebot (demo, partner blr_livekit (livekit))" in plain.stdout
    assert "OPTIONS with 200 whatever its trunks say (livekit/sip issue 764)" in plain.stdout
    assert "check --invite" in plain.stdout
    called = cli("--invite", "--format", "json")
    assert called.returncode == 2, called.stdout + called.stderr
    assert "Traceback" not in called.stderr
    [trunk] = json.loads(called.stdout)["trunks"]
    assert trunk["partner"] == {"name": "blr_livekit", "platform": "livekit"}
    [found] = trunk["destinations"]
    assert found["state"] == "down"
    assert found["partner"] == {"name": "blr_livekit", "platform": "livekit"}
    assert found["invite"]["code"] == 404
    assert found["invite"]["provisionals"] == [100]
    [error] = [f["message"] for f in found["findings"] if f["severity"] == "error"]
    assert error.startswith(f"{BOTH_ENDS}: 404 No trunk found: no inbound trunk of blr_livekit")
    assert f"list {DID} in its numbers in E.164" in error
