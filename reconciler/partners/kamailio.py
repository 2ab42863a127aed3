"""Kamailio 5.6 (Debian bookworm): the Exotel end of a partner's trunks as Kamailio files.

Called by ``partners.render``. Pure. What each file is follows the module documentation
(https://kamailio.org/docs/modules/5.6.x/: dispatcher, permissions, tls, uac; the same
READMEs Debian installs under /usr/share/doc/kamailio/modules/), as docs/partners/kamailio.md
tells:

* ``dispatcher.list``: Exotel's proxy (``sip:<host>:<port>;transport=<tls|tcp>``), one
  dispatcher set per trunk, for calls out;
* ``address.list``: the addresses Exotel's signalling comes from, one permissions group
  per trunk (port 0: any source port), for calls in;
* ``tls.cfg``: a TLS client profile for each of Exotel's proxies reached over TLS (only
  when a trunk uses TLS);
* ``exotel.cfg``: the module parameters the routes need, and the routes:
  ``route[EXOTEL_IN]`` (a call from Exotel to one of the trunks' DIDs),
  ``route[EXOTEL_OUT]`` and ``route[EXOTEL_OUT_<trunk>]`` (a call out through Exotel with
  the trunk's caller ID and realm), ``failure_route[EXOTEL_AUTH]`` (Exotel's digest
  challenge answered with the password Kamailio reads from its environment, ``$env``).

Set, group and trunk go together: the trunk at position N (by account, then name) has
dispatcher set N and permissions group N.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from reconciler.manifests.seam import End
from reconciler.partners import (
    Labelled,
    heading,
    no_calls_out,
    sends_auth,
    text,
    variable,
    who,
    wrapped,
)

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"  # Debian's (package ca-certificates)
DEFAULT_DIR = "/etc/kamailio/exotel/"
MODULES = "tm, sl, rr, pv, xlog, textops, siputils, dispatcher, permissions, uac"
ROUND_ROBIN = "4"  # ds_select_dst's algorithm; each set has one destination
FILES = ("dispatcher.list", "address.list", "exotel.cfg", "tls.cfg")  # every file it writes


def render(trunks: Sequence[Labelled], header: str) -> dict[str, str]:
    """Kamailio's files for the partner's trunks."""
    dispatcher, addresses, routes, tls = FILES
    files = {
        dispatcher: _dispatcher(trunks, header),
        addresses: _addresses(trunks, header),
        routes: _routes(trunks, header),
    }
    if any(end.transport == "tls" for _, end in trunks):
        files[tls] = _tls(trunks, header)
    return files


def _string(value: str) -> str:
    """A Kamailio string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _exotel(end: End) -> str:
    return f"sip:{end.exotel_host}:{end.exotel_port};transport={end.transport}"


def _is_address(host: str) -> bool:
    try:
        ipaddress.IPv4Address(host)
    except ValueError:
        return False
    return True


def _any_of(pv: str, values: Sequence[str]) -> str:
    return " || ".join(f"{pv} == {_string(value)}" for value in values)


# -- dispatcher.list and address.list ----------------------------------------------------


def _dispatcher(trunks: Sequence[Labelled], header: str) -> str:
    lines = heading(
        "#",
        header,
        "Kamailio dispatcher list: Exotel's SIP proxy for calls out, one set per trunk (setid "
        "destination flags priority attrs). exotel.cfg loads it (list_file) and "
        "route[EXOTEL_OUT_<trunk>] picks the trunk's set (ds_select_dst).",
    )
    for number, (label, end) in enumerate(trunks, 1):
        why = no_calls_out(end)
        if why is None:
            lines.append(f"{number} {_exotel(end)} 0 0 duid={label}")
        else:
            lines += wrapped("#", f"{number} {who(label, end)}: no calls out: {why}")
    return text(lines)


def _network(address: str) -> tuple[str, int]:
    network = ipaddress.IPv4Network(address, strict=False)
    return str(network.network_address), network.prefixlen


def _addresses(trunks: Sequence[Labelled], header: str) -> str:
    lines = heading(
        "#",
        header,
        "Kamailio permissions address file: where Exotel's SIP signalling comes from, for "
        "calls in, one group per trunk (group address netmask port tag); port 0 is any source "
        "port, as TCP and TLS source ports vary. exotel.cfg loads it (address_file) and "
        "route[EXOTEL_IN] checks a call's source against the trunk's group "
        "(allow_source_address).",
    )
    for number, (label, end) in enumerate(trunks, 1):
        if not end.exotel_addresses:
            lines += wrapped(
                "#",
                f"{number} {who(label, end)}: account {end.account} lists no signalling "
                "addresses (signalling.addresses), so route[EXOTEL_IN] takes calls to its "
                "DIDs from any address",
            )
        for address in end.exotel_addresses:
            host, mask = _network(address)
            lines.append(f"{number} {host} {mask} 0 {label}")
    return text(lines)


# -- tls.cfg ---------------------------------------------------------------------------------


def _tls(trunks: Sequence[Labelled], header: str) -> str:
    lines = heading(
        "#",
        header,
        "Kamailio TLS client profiles for Exotel's SIP over TLS (tls module): add them to the "
        'file modparam("tls", "config") names, beside your own [server:default]. A call out '
        "through a trunk selects its profile: by the proxy's address and port, or, for a host "
        "name, by the server_id that exotel.cfg sets ($xavp(tls=>server_id)). Exotel's "
        f"certificate is verified against {CA_BUNDLE}.",
    )
    profiles: dict[tuple[str, int], list[str]] = {}
    for label, end in trunks:
        if end.transport == "tls" and no_calls_out(end) is None:
            profiles.setdefault((end.exotel_host, end.exotel_port), []).append(label)
    for (host, port), labels in profiles.items():
        lines += [
            "",
            *wrapped("#", f"{'trunks' if len(labels) > 1 else 'trunk'} {', '.join(labels)}"),
        ]
        if _is_address(host):
            lines.append(f"[client:{host}:{port}]")
        else:
            lines += ["[client:any]", f"server_name = {host}", f"server_id = {host}"]
        lines += [
            "method = TLSv1.2+",
            "verify_certificate = yes",
            "require_certificate = yes",
            f"ca_list = {CA_BUNDLE}",
        ]
    return text(lines)


# -- exotel.cfg ------------------------------------------------------------------------------


def _routes(trunks: Sequence[Labelled], header: str) -> str:
    variables = sorted({name for _, end in trunks if (name := variable(end))})
    tls = any(end.transport == "tls" for _, end in trunks)
    names = ", ".join(who(label, end) for label, end in trunks)
    lines = heading(
        "#",
        header,
        f"Kamailio 5.6: the Exotel end of trunks {names}. Include it in kamailio.cfg after "
        f"the loadmodule lines, defining EXOTEL_DIR first unless this folder is {DEFAULT_DIR}:",
        "",
        f"    #!define EXOTEL_DIR {_string(DEFAULT_DIR)}",
        f'    include_file "{DEFAULT_DIR}exotel.cfg"',
        "",
        f"It needs the modules {MODULES}{', tls' if tls else ''}"
        + (
            f", and {' and '.join(variables)} in Kamailio's environment (the digest "
            "password: read when Exotel challenges a call, never written here)."
            if variables
            else "."
        ),
        "",
        "In request_route, for a new INVITE (after your own checks, before any record_route()):",
        "",
        "    if (route(EXOTEL_IN)) {",
        "        # from Exotel, to a DID of the trunk $avp(exotel_trunk): relay it to your side",
        "    }",
        "    route(EXOTEL_OUT);  # from your side: out through Exotel (relays, then exits)",
        "",
        "Requests within the dialog follow the Record-Route headers (loose_route()).",
    )
    lines += [
        "",
        "#!ifndef EXOTEL_DIR",
        f"#!define EXOTEL_DIR {_string(DEFAULT_DIR)}",
        "#!endif",
        "",
        'modparam("dispatcher", "list_file", EXOTEL_DIR "dispatcher.list")',
        'modparam("permissions", "address_file", EXOTEL_DIR "address.list")',
        'modparam("uac", "auth_username_avp", "$avp(exotel_username)")',
        'modparam("uac", "auth_password_avp", "$avp(exotel_password)")',
        'modparam("uac", "auth_realm_avp", "$avp(exotel_realm)")',
        "# uac_replace_from() restores the caller's own From in replies and later requests",
        'modparam("rr", "append_fromtag", 1)',
    ]
    if tls:
        lines += [
            "# a call out names its TLS client profile (tls.cfg) in $xavp(tls=>server_id)",
            'modparam("tls", "xavp_cfg", "tls")',
        ]
    lines += ["", *_incoming(trunks), "", *_outgoing(trunks)]
    for number, (label, end) in enumerate(trunks, 1):
        lines += ["", *_one_out(number, label, end)]
    lines += ["", *_auth(trunks)]
    return text(lines)


def _incoming(trunks: Sequence[Labelled]) -> list[str]:
    lines = [
        *wrapped(
            "#",
            "Calls from Exotel. True for a new INVITE from Exotel's signalling to a DID of a "
            "trunk, with $avp(exotel_trunk) naming the trunk; a 404 for any other number "
            "Exotel sends; false for anything that does not come from Exotel.",
        ),
        "route[EXOTEL_IN] {",
        '    if (!is_method("INVITE") || has_totag()) {',
        "        return -1;",
        "    }",
        "    $var(exotel_source) = 0;",
    ]
    checked = False
    for number, (label, end) in enumerate(trunks, 1):
        if not end.numbers:
            lines += _indent(
                wrapped("#", f"{who(label, end)}: no DIDs, so Exotel sends it no calls")
            )
            continue
        said = f"{who(label, end)}: DIDs {', '.join(end.numbers)}"
        if end.headers:
            said += (
                f"; Exotel's routes add the headers {', '.join(end.headers)} "
                f"(read them as $hdr({end.headers[0]}))"
            )
        accept = [
            f"    if ({_any_of('$rU', end.numbers)}) {{",
            f"        $avp(exotel_trunk) = {_string(label)};",
            "        return 1;",
            "    }",
        ]
        if end.exotel_addresses:
            checked = True
            lines += _indent(wrapped("#", f"{said}; from group {number} of address.list"))
            lines += [
                f'    if (allow_source_address("{number}")) {{',
                "        $var(exotel_source) = 1;",
                *_indent(accept),
                "    }",
            ]
        else:
            lines += _indent(
                wrapped(
                    "#",
                    f"{said}; from any address, as account {end.account} lists no "
                    "signalling addresses",
                )
            )
            lines += accept
    if checked:
        lines += [
            "    if ($var(exotel_source) == 1) {",
            '        send_reply("404", "Not Found - not a DID of this trunk");',
            "        exit;",
            "    }",
        ]
    lines += ["    return -1;", "}"]
    return lines


def _outgoing(trunks: Sequence[Labelled]) -> list[str]:
    calling = [(label, end) for label, end in trunks if no_calls_out(end) is None]
    otherwise = f"else through {calling[0][0]}" if len(calling) == 1 else "else a 403"
    lines = [
        *wrapped(
            "#",
            "Calls out to the PSTN through Exotel, from your side: through the trunk whose "
            f"caller IDs (alias, DIDs) include the From user, {otherwise}. Relays the INVITE "
            "and exits.",
        ),
        "route[EXOTEL_OUT] {",
    ]
    for label, end in calling:
        lines += [
            f"    if ({_any_of('$fU', end.outbound_numbers)}) {{",
            f"        route(EXOTEL_OUT_{label});",
            "    }",
        ]
    if len(calling) == 1:
        lines.append(f"    route(EXOTEL_OUT_{calling[0][0]});")
    else:
        reason = (
            "Forbidden - the caller ID is none of the Exotel trunks'"
            if calling
            else "Forbidden - no trunk of this partner makes calls through Exotel"
        )
        lines += [f'    send_reply("403", {_string(reason)});', "    exit;"]
    lines.append("}")
    return lines


def _one_out(number: int, label: str, end: End) -> list[str]:
    why = no_calls_out(end)
    if why is not None:
        return [
            *wrapped("#", f"{who(label, end)}: no calls out: {why}."),
            f"route[EXOTEL_OUT_{label}] {{",
            f'    send_reply("403", "Forbidden - trunk {label} makes no calls through Exotel");',
            "    exit;",
            "}",
        ]
    caller, others = end.outbound_numbers[0], end.outbound_numbers
    first = f"{caller} (the alias)" if end.alias else caller
    shown = (
        f"the caller ID is the From user when it is one of {', '.join(others)}, else {first}"
        if len(others) > 1
        else f"the caller ID is {first}"
    )
    auth = (
        f"digest as {end.credential.username} when Exotel challenges "
        f"(password_version {end.credential.password_version})"
        if end.credential
        else "no credential: Exotel admits it by its whitelisted IP"
    )
    media = (
        f"Exotel offers {', '.join(end.codecs)}"
        + (", as SRTP over TLS" if end.transport == "tls" else "")
        + "; the SDP passes untouched"
    )
    at = f"@{end.realm}"
    named_tls = end.transport == "tls" and not _is_address(end.exotel_host)
    return [
        *wrapped(
            "#",
            f"{who(label, end)}: to Exotel's proxy {end.exotel_host}:{end.exotel_port} over "
            f"{end.transport.upper()} (dispatcher set {number}); {shown}; From and "
            f"Request-URI in the realm {end.realm}; {auth}. {media}.",
        ),
        f"route[EXOTEL_OUT_{label}] {{",
        "    if ($rU == $null) {",
        '        send_reply("484", "Address Incomplete - no number to call");',
        "        exit;",
        "    }",
        f"    $avp(exotel_trunk) = {_string(label)};",
        f"    $var(exotel_caller) = {_string(caller)};",
        f"    if ({_any_of('$fU', others)}) {{",
        "        $var(exotel_caller) = $fU;",
        "    }",
        f'    uac_replace_from("sip:$var(exotel_caller){at}");',
        '    if (is_present_hf("P-Asserted-Identity")) {',
        '        remove_hf("P-Asserted-Identity");',
        f'        append_hf("P-Asserted-Identity: <sip:$var(exotel_caller){at}>\\r\\n");',
        "    }",
        f'    $ru = "sip:" + $rU + "{at}";',
        f"    if (!route(EXOTEL_TO_{label})) {{",
        f'        send_reply("503", "Service Unavailable - no Exotel proxy in set {number}");',
        "        exit;",
        "    }",
        "    record_route();",
        '    t_on_failure("EXOTEL_AUTH");',
        "    if (!t_relay()) {",
        "        sl_reply_error();",
        "    }",
        "    exit;",
        "}",
        "",
        *wrapped(
            "#",
            f"Where {label}'s calls go: Exotel's proxy (set {number})"
            + (", and its TLS profile." if named_tls else "."),
        ),
        f"route[EXOTEL_TO_{label}] {{",
        f'    if (!ds_select_dst("{number}", "{ROUND_ROBIN}")) {{',
        "        return -1;",
        "    }",
        *(
            [
                f"    $xavp(tls=>server_name) = {_string(end.exotel_host)};",
                f"    $xavp(tls[0]=>server_id) = {_string(end.exotel_host)};",
            ]
            if named_tls
            else []
        ),
        "    return 1;",
        "}",
    ]


def _auth(trunks: Sequence[Labelled]) -> list[str]:
    lines = [
        *wrapped(
            "#",
            "Exotel challenges a call out (401, 407): answered once, with the trunk's "
            "credential. The password is read from Kamailio's environment at that moment, "
            "never written here.",
        ),
        "failure_route[EXOTEL_AUTH] {",
        '    if (t_is_canceled() || !t_check_status("401|407")) {',
        "        exit;",
        "    }",
    ]
    for label, end in trunks:
        name = variable(end)
        if not sends_auth(end) or end.credential is None or name is None:  # (typed: both set)
            continue
        lines += [
            f"    if ($avp(exotel_trunk) == {_string(label)}) {{",
            f"        # password_version {end.credential.password_version}",
            f"        $avp(exotel_username) = {_string(end.credential.username)};",
            f"        $avp(exotel_password) = $env({name});",
            f"        $avp(exotel_realm) = {_string(end.realm)};",
            f"        $var(exotel_variable) = {_string(name)};",
            f"        if (!route(EXOTEL_TO_{label})) {{",
            "            exit;",
            "        }",
            "    }",
        ]
    lines += [
        "    if ($avp(exotel_username) == $null) {",
        '        xlog("L_ERR", "exotel: Exotel challenged a call of trunk $avp(exotel_trunk), '
        'which has no credential\\n");',
        "        exit;",
        "    }",
        '    if ($avp(exotel_password) == $null || $avp(exotel_password) == "") {',
        '        xlog("L_ERR", "exotel: trunk $avp(exotel_trunk): $var(exotel_variable) is not '
        "set in Kamailio's environment, so Exotel's challenge goes unanswered\\n\");",
        "        exit;",
        "    }",
        "    if (uac_auth()) {",
        "        t_relay();",
        "    }",
        "    exit;",
        "}",
    ]
    return lines


def _indent(lines: Iterable[str]) -> list[str]:
    return [f"    {line}" for line in lines]


__all__ = ["FILES", "render"]
