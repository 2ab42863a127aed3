"""FreeSWITCH: the Exotel end of a partner's trunks as FreeSWITCH XML.

Called by ``partners.render``. Pure. Two files, laid out as in FreeSWITCH's configuration
folder, in the syntax of the documentation docs/partners/freeswitch.md cites (Sofia gateway
parameters, ACLs, the preprocessor's env-set):

* ``sip_profiles/external/exotel.xml``: one Sofia gateway per trunk that makes calls out
  (``proxy``, ``register=false``, ``register-transport``, ``realm``, ``from-domain``,
  ``from-user``, ``caller-id-in-from``, ``username``, ``password``), the password taken
  from FreeSWITCH's environment when the configuration is loaded (``env-set`` into a
  global variable, expanded as ``$${...}``);
* ``exotel-acl.xml``: the ACL list ``exotel`` of the addresses Exotel's signalling comes
  from, for the profile's ``apply-inbound-acl``.

Checked against those documents and golden files, not against a running FreeSWITCH.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence

from reconciler.manifests.seam import End
from reconciler.partners import Labelled, no_calls_out, text, variable, who, wrapped

GATEWAYS = "sip_profiles/external/exotel.xml"
ACL = "exotel-acl.xml"
ACL_NAME = "exotel"
FILES = (GATEWAYS, ACL)  # every file it writes


def render(trunks: Sequence[Labelled], header: str) -> dict[str, str]:
    """FreeSWITCH's files for the partner's trunks."""
    return {GATEWAYS: _gateways(trunks, header), ACL: _acl(trunks, header)}


def password_variable(label: str) -> str:
    """The global variable a gateway's password is set into (from the environment)."""
    return f"exotel_password_{label}"


def _attr(value: str) -> str:
    return (
        value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def _comment(*paragraphs: str, indent: str = "", width: int = 88) -> list[str]:
    """An XML comment. Never ``--`` (XML forbids it in comments), nor what FreeSWITCH's
    preprocessor acts on even there (src/switch_xml.c): its tag, ``$${``, and
    ``<include>``, ``</include>`` or ``<?``, for which it drops the whole line."""
    safe = [_safe(p) for p in paragraphs]
    if len(safe) == 1 and len(indent) + len(safe[0]) + 9 <= width:
        return [f"{indent}<!-- {safe[0]} -->"]
    return [f"{indent}<!--", *wrapped(f"{indent} ", *safe, width=width), f"{indent}-->"]


def _safe(text: str) -> str:
    while "--" in text:
        text = text.replace("--", "- -")
    text = re.sub("x-pre-process", "preprocessor", text.replace("$${", "$ {"), flags=re.I)
    text = re.sub(r"<(/?include>|\?)", r"\1", text)
    return f"{text} " if text.endswith("-") else text


def _heading(header: str) -> str:
    """A file's first line: the header, on one line (render-partner looks for it there)."""
    return f"<!-- {_safe(header)} -->"


def _gateways(trunks: Sequence[Labelled], header: str) -> str:
    lines = [
        _heading(header),
        *_comment(
            "FreeSWITCH: a Sofia gateway for each trunk that makes calls out through Exotel. "
            "Keep this file in conf/sip_profiles/external/, whose files the external profile "
            "includes among its gateways, and dial sofia/gateway/<trunk>/<number>. A TLS trunk "
            "needs TLS on that profile (tls true). The digest passwords are not here: each is "
            "copied from FreeSWITCH's environment into a global variable when the "
            "configuration loads (the preprocessor's env-set), so the variables named below "
            "must be in the environment FreeSWITCH starts with.",
            "Calls in come from Exotel to the external profile, to the DIDs named below as "
            "destination_number; exotel-acl.xml lists the addresses they come from.",
        ),
        "<include>",
    ]
    for label, end in trunks:
        lines += ["", *_gateway(label, end)]
    lines.append("</include>")
    return text(lines)


def _gateway(label: str, end: End) -> list[str]:
    dids = f"DIDs {', '.join(end.numbers)}" if end.numbers else "no DIDs"
    why = no_calls_out(end)
    if why is not None:
        return _comment(
            f"{who(label, end)}: {dids}; no calls out, so no gateway: {why}.", indent="  "
        )
    caller = end.outbound_numbers[0]
    said = (
        f"{who(label, end)}: {dids}. Calls out show {caller}"
        + (" (the alias)" if end.alias else "")
        + f" in From (from-user; with caller-id-in-from true the call's own caller ID would "
        f"be sent instead, and Exotel refuses any but {', '.join(end.outbound_numbers)}). "
        f"Exotel offers {', '.join(end.codecs)}"
        + (", as SRTP (SDES) over TLS" if end.transport == "tls" else "")
        + "."
    )
    params = [
        ("proxy", f"{end.exotel_host}:{end.exotel_port}"),
        ("register", "false"),
        ("register-transport", end.transport),
        ("realm", end.realm),
        ("from-domain", end.realm),
        ("from-user", caller),
        ("caller-id-in-from", "false"),
    ]
    name = variable(end)
    if end.credential is not None and name is not None:
        lines = _comment(
            said,
            f"The digest password of {end.credential.username} (password_version "
            f"{end.credential.password_version}) is the environment variable {name}.",
            indent="  ",
        )
        global_name = password_variable(label)
        lines.append(f'  <X-PRE-PROCESS cmd="env-set" data="{global_name}=${_attr(name)}"/>')
        params += [
            ("username", end.credential.username),
            ("password", f"$${{{global_name}}}"),
        ]
    else:
        lines = _comment(
            said, "No credential: Exotel admits it by its whitelisted IP.", indent="  "
        )
    lines.append(f'  <gateway name="{_attr(label)}">')
    lines += [f'    <param name="{key}" value="{_attr(value)}"/>' for key, value in params]
    lines.append("  </gateway>")
    return lines


def _acl(trunks: Sequence[Labelled], header: str) -> str:
    open_to_all = [(label, end) for label, end in trunks if not end.exotel_addresses]
    nodes: dict[str, list[str]] = {}
    for label, end in trunks:
        for address in end.exotel_addresses:
            cidr = str(ipaddress.IPv4Network(address, strict=False))
            nodes.setdefault(cidr, []).append(label)
    lines = [
        _heading(header),
        *_comment(
            f"FreeSWITCH: the ACL list {ACL_NAME}, the addresses Exotel's SIP signalling comes "
            "from, for calls in. Keep this file in the configuration folder (conf/"
            f"{ACL}), include it inside network-lists in autoload_configs/acl.conf.xml (a "
            f'preprocessor include: cmd "include", data "{ACL}"), and apply it to the '
            "profile Exotel calls: the parameter apply-inbound-acl, value "
            f"{ACL_NAME}, in sip_profiles/external.xml."
        ),
        "<include>",
    ]
    if open_to_all:
        names = ", ".join(who(label, end) for label, end in open_to_all)
        lines += _comment(
            f"Allows every address: the accounts of {names} list no signalling addresses "
            "(signalling.addresses), so calls from Exotel cannot be told apart.",
            indent="  ",
        )
    lines.append(f'  <list name="{ACL_NAME}" default="{"allow" if open_to_all else "deny"}">')
    for cidr, labels in nodes.items():
        lines += _comment(", ".join(labels), indent="    ")
        lines.append(f'    <node type="allow" cidr="{cidr}"/>')
    lines += ["  </list>", "</include>"]
    return text(lines)


__all__ = ["ACL", "ACL_NAME", "FILES", "GATEWAYS", "password_variable", "render"]
