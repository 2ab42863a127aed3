"""What a LiveKit SIP server's answers mean, for a trunk whose partner is LiveKit.

Called by ``checking.probe`` after OPTIONS (``options``) and by ``checking.invite`` after
the test call (``judge``). Pure. LiveKit answers OPTIONS with 200 whatever its trunks say
(``onOptions`` in livekit/sip ``pkg/sip/inbound.go``; livekit/sip issue 764), so only an
INVITE to one of the trunk's DIDs tests the inbound trunk, its dispatch rule and the agent.

What livekit/sip (at be5d3f57) answers an INVITE, in the order it decides
(``pkg/sip/inbound.go`` unless said; docs/checking.md has the table with sources):

- 100 "Processing" as soon as the INVITE is read (unless ``hide_inbound_port`` is set);
- the trunk: looked up by called number, then caller (``allowed_numbers``) and source
  address or From host (``allowed_addresses``) (``MatchTrunkDetailed`` and
  ``matchAddrMasks`` in livekit/protocol ``sip/sip.go``). None: 404 "No trunk found"
  (LiveKit Cloud's lookup) or "Does not match any SIP Trunks", or nothing more at all
  (the call is dropped, counted as a "flood"); two for the number, or LiveKit's API
  failing: 503 "Try again later"; over quota: 503 "Service temporarily unavailable";
- a trunk with ``auth_username`` and ``auth_password``: 407 "Unauthorized" with a digest
  challenge (401 for wrong credentials);
- 180 "Ringing", re-sent every ``sip_ringing_interval`` (1 s by default) while it rings;
- the dispatch rule: none matches, nothing more after that 180 (the open-source server,
  livekit/livekit ``pkg/service/ioservice_sip.go``: ``ErrNoDispatchMatched`` is DROP),
  or 404 "Does not match Trunks or Dispatch Rules";
- the media: no common codec or encryption profile, a 400 without a reason phrase;
- the agent: 200 once it has joined the room; a call given up before that (the room
  failed, or no agent within the ringing timeout, 3 minutes by default), 486 "Rejected".

A refusal that the caller's address alone could explain is judged by where the test call
came from (``Ringing.source``): inconclusive from an address the account's signalling
addresses do not cover, since the partner should allow only those (``_maybe_address``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from reconciler.checking.results import NO_ANSWER, Partner, Result, Ringing
from reconciler.manifests.seam import CODECS  # all Exotel offers

OPTIONS_ISSUE = "livekit/sip issue 764"
NUMBERS_ISSUE = "livekit/sip issue 278"

# LiveKit's reason phrases that say which check failed (pkg/sip/inbound.go).
NO_TRUNK = frozenset({"no trunk found", "does not match any sip trunks"})
NO_RULE = "does not match trunks or dispatch rules"
QUOTA = "service temporarily unavailable"


def options(result: Result, partner: Partner, *, invited: bool) -> None:
    """OPTIONS answered 200: from LiveKit, that proves its SIP server runs, nothing more."""
    answer = result.answer
    if answer is None or not 200 <= answer.code < 300:
        return
    said = (
        f"partner {partner.name} is LiveKit, which answers OPTIONS with 200 whatever its "
        f"trunks say ({OPTIONS_ISSUE})"
    )
    if invited:
        result.note(f"{said}: the test call is the check")
    else:
        result.note(
            f"{said}: this shows its SIP server runs, not that it takes this trunk's "
            "calls; check --invite tests that with a call to one of the trunk's DIDs as "
            "Exotel sends it (it rings the agent)"
        )


def judge(result: Result, ringing: Ringing, partner: Partner) -> None:
    """The test call's outcome, with the likely cause on LiveKit's side; each finding
    names both ends (the Exotel trunk and the LiveKit partner)."""
    trunk = result.destination.trunk
    code, reason = ringing.code, ringing.reason
    said = f"{code} {reason}".rstrip() if code is not None else reason
    head = (
        f"INVITE to {ringing.did} (Exotel trunk {trunk} -> LiveKit partner {partner.name}): {said}"
    )
    if code is None:
        _unanswered(result, ringing, partner, head)
    elif 200 <= code < 300:
        _answered(result, ringing, partner, head)
    elif code == 404:
        _not_found(result, ringing, partner, head)
    elif code in (401, 407):
        result.error(
            f"{head}: {partner.name}'s inbound trunk for {ringing.did} has auth_username "
            "and auth_password, so LiveKit asks every call for digest credentials, but "
            f"Exotel sends trunk {trunk}'s calls without any (it is trusted by its "
            "addresses): clear them and list Exotel's signalling addresses in "
            "allowed_addresses instead"
        )
    elif code == 403:
        _maybe_address(
            result,
            ringing,
            partner,
            f"{head}: LiveKit's SIP server sends no 403 to an INVITE, so something in front "
            f"of {partner.name} refused the call (a firewall, an SBC): most likely it does "
            "not admit the caller's address, or it demands credentials, which Exotel does "
            "not send",
        )
    elif code == 400 and reason:
        result.error(
            f"{head}: LiveKit could not read the INVITE as Exotel sends it for trunk {trunk}"
        )
    elif code in (400, 488, 606):
        result.error(f"{head}: {_media(result, partner, code)}")
    elif code == 486:
        result.error(
            f"{head}: {partner.name} took the call (an inbound trunk and a dispatch rule "
            f"matched) but gave up before answering: LiveKit answers only once {_agent(partner)} "
            "has joined the room, and says 486 Rejected when the room fails or no agent comes "
            "within the trunk's ringing_timeout (3 minutes by default): see that the agent "
            "runs and is registered under the name the dispatch rule gives"
        )
    elif code == 503 and reason.lower() == QUOTA:
        result.error(f"{head}: {partner.name}'s LiveKit project is over its SIP call quota")
    elif code == 503:
        result.error(
            f"{head}: LiveKit could not choose a trunk or a dispatch rule for {ringing.did}: "
            "two inbound trunks of "
            f"{partner.name} list it for the same callers (LiveKit refuses the call, "
            "'Multiple SIP Trunks matched'), or its SIP server cannot reach its API"
        )
    else:
        result.error(f"{head}: calls from Exotel trunk {trunk} to {partner.name} would fail")


def _answered(result: Result, ringing: Ringing, partner: Partner, head: str) -> None:
    """A 2xx: trunk, dispatch rule and agent all work. The codec and, over TLS, the
    encryption LiveKit chose must be what Exotel takes."""
    if ringing.codec not in CODECS:
        result.error(f"{head}: answered with {ringing.codec or 'no audio codec'}, not PCMA or PCMU")
    if _secure(result) and ringing.srtp is False:
        result.warn(
            f"{head}: LiveKit answered Exotel's SRTP offer with plain RTP, so calls from "
            f"Exotel trunk {result.destination.trunk} over TLS would carry "
            f"unencrypted media: set media_encryption on {partner.name}'s inbound trunk to "
            "SIP_MEDIA_ENCRYPT_ALLOW (or REQUIRE)"
        )


def _not_found(result: Result, ringing: Ringing, partner: Partner, head: str) -> None:
    reason = ringing.reason.lower()
    if reason == NO_RULE:
        result.error(
            f"{head}: an inbound trunk of {partner.name} takes {ringing.did}, but no "
            "dispatch rule does: give the trunk a dispatch rule (its trunk_ids and numbers "
            "must admit this trunk and number)"
        )
        return
    cause = _no_trunk(ringing, partner)
    if reason not in NO_TRUNK:
        cause = f"not LiveKit's words for it, but most likely {cause}"
    _maybe_address(result, ringing, partner, f"{head}: {cause}")


def _unanswered(result: Result, ringing: Ringing, partner: Partner, head: str) -> None:
    """No final answer: what the 1xx before the silence say (LiveKit re-sends 180 every
    second while it waits for the agent, and says nothing more once it drops a call)."""
    rings = ringing.provisionals.count(180)
    if ringing.ended != "cancelled" and not ringing.provisionals and ringing.reason == NO_ANSWER:
        _maybe_address(
            result,
            ringing,
            partner,
            f"{head}: a LiveKit server with hide_inbound_port set says nothing at all when it "
            f"drops a call, which it does when {_no_trunk(ringing, partner)}",
        )
    elif ringing.ended != "cancelled":  # the connection failed, or what came was not SIP
        trunk = result.destination.trunk
        result.error(f"{head}: calls from Exotel trunk {trunk} to {partner.name} would fail")
    elif rings > 1:
        result.warn(
            f"{head}: {partner.name} took the call (an inbound trunk and a dispatch rule "
            f"matched: it rang {rings} times) but {_agent(partner)} did not answer in time: "
            "LiveKit answers only once the agent has joined the room; see that it runs, or "
            "give --timeout longer"
        )
    elif rings == 1:
        _maybe_address(
            result,
            ringing,
            partner,
            f"{head}: LiveKit rang once and went silent (while it rings it re-sends 180 every "
            "second), which is how it drops a call no dispatch rule takes: give "
            f"{partner.name}'s inbound trunk for {ringing.did} a dispatch rule whose "
            "trunk_ids and numbers admit it (an open-source LiveKit does the same when no "
            "inbound trunk takes the number and every dispatch rule names trunks)",
        )
    else:
        _maybe_address(
            result,
            ringing,
            partner,
            f"{head}: LiveKit went silent after 100 Processing, which is how it drops a call "
            f"it counts as a flood, when {_no_trunk(ringing, partner)}",
        )


def _no_trunk(ringing: Ringing, partner: Partner) -> str:
    return (
        f"no inbound trunk of {partner.name} takes this call: list {ringing.did} in its "
        "numbers in E.164, as Exotel sends it (LiveKit compares numbers after dropping "
        "spaces, dashes and brackets and adding a leading +, so one written with a "
        f"trunk prefix 0 never matches, {NUMBERS_ISSUE}); its allowed_numbers, if any, "
        "must admit Exotel's callers, and its allowed_addresses Exotel's signalling "
        "addresses"
    )


def _maybe_address(result: Result, ringing: Ringing, partner: Partner, message: str) -> None:
    """A refusal that could be the source address alone. When the account lists Exotel's
    signalling addresses, the partner's inbound trunk should allow only those
    (``allowed_addresses``): a test call from an address they do not cover may be refused
    for that alone, so the refusal is inconclusive (a warning). From an address they
    cover (the INVITE's source, ``Ringing.source``), Exotel's calls from there would be
    refused alike; when none are listed the trunk allows any address: either way the
    refusal stands (an error)."""
    addresses = partner.exotel_addresses
    source = ringing.source
    if not addresses:
        result.error(message)
        return
    listed = ", ".join(addresses)
    if source is not None and covers(addresses, source):
        result.error(
            f"{message}. The test call came from {source}, which Exotel's signalling "
            f"addresses ({listed}, signalling.addresses) cover, so Exotel's calls from there "
            "would be refused alike"
        )
        return
    came = (
        f"the test call came from {source}, which Exotel's signalling addresses ({listed}, "
        "signalling.addresses) do not cover"
        if source is not None
        else "the test call came from this machine, not known to be one of Exotel's "
        f"signalling addresses ({listed}, signalling.addresses)"
    )
    result.warn(
        f"{message}. Inconclusive from here: {came}; if {partner.name}'s inbound trunk "
        "allows only those, as it should, LiveKit refuses the call for that alone: run "
        "check --invite from one of those addresses to be sure"
    )


def covers(addresses: Sequence[str], source: str) -> bool:
    """Whether ``source`` (an IP address, as a socket names it) is one of ``addresses``
    or inside one of their networks (``signalling.addresses``: 203.0.113.10,
    203.0.113.0/28). An IPv4 address mapped into IPv6 counts as the IPv4 one."""
    try:
        address = ipaddress.ip_address(source)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for entry in addresses:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            continue
        if address in network:
            return True
    return False


def _media(result: Result, partner: Partner, code: int) -> str:
    said = "LiveKit found no codec or encryption it shares with the offer"
    if code == 400:
        said = (
            "a 400 without a reason phrase is how LiveKit refuses an offer it shares no "
            "codec or encryption with"
        )
    if _secure(result):
        return (
            f"{said}: {partner.name}'s inbound trunk or dispatch rule allows neither PCMA "
            "nor PCMU in its media codecs, or media_encryption refuses Exotel's SRTP"
        )
    return (
        f"{said}: {partner.name}'s inbound trunk has media_encryption "
        "SIP_MEDIA_ENCRYPT_REQUIRE while Exotel sends plain RTP over TCP (allow it, or "
        "move the trunk to TLS), or its media codecs allow neither PCMA nor PCMU"
    )


def _agent(partner: Partner) -> str:
    return f"the agent {partner.agent}" if partner.agent else "an agent"


def _secure(result: Result) -> bool:
    return result.destination.transport == "tls"
