"""Asterisk (PJSIP): the Exotel end of a partner's trunks as PJSIP wizard sections.

Called by ``partners.render``. Pure. Two files, in the syntax of Asterisk's configuration
files and ``configs/samples/pjsip_wizard.conf.sample`` (docs/partners/asterisk.md):

* ``pjsip_wizard_exotel.conf``: one ``type = wizard`` section per trunk: Exotel's proxy
  (``remote_hosts``, ``transport``, ``contact_pattern``), ``sends_auth`` with
  ``outbound_auth/username``, no registrations, and the endpoint's ``context``, codecs
  (``allow``), ``media_encryption = sdes`` over TLS, ``from_user`` (the alias) and
  ``from_domain`` (the realm); ``identify/match`` lists Exotel's signalling addresses.
  It ends by including ``exotel_secrets.conf``;
* ``exotel_secrets.conf.in``: a template of that file, each password an environment
  reference (``${NAME}``) that the deployment fills with ``envsubst``, adding
  ``outbound_auth/password`` to each section (``[name](+)``).

Checked against those documents and golden files, not against a running Asterisk.
"""

from __future__ import annotations

from collections.abc import Sequence

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

WIZARD = "pjsip_wizard_exotel.conf"
SECRETS = "exotel_secrets.conf"
TEMPLATE = f"{SECRETS}.in"
FILES = (WIZARD, TEMPLATE)  # every file it writes
CONTEXT = "from-exotel"
CODECS = {"PCMA": "alaw", "PCMU": "ulaw"}  # Exotel's names -> Asterisk's


def render(trunks: Sequence[Labelled], header: str) -> dict[str, str]:
    """Asterisk's files for the partner's trunks."""
    secret = [(label, end) for label, end in trunks if sends_auth(end)]
    files = {WIZARD: _wizard(trunks, header, secrets=bool(secret))}
    if secret:
        files[TEMPLATE] = _template(secret, header)
    return files


def envsubst(trunks: Sequence[Labelled]) -> str:
    """The command that makes the secrets file from the template, naming its variables
    (so envsubst replaces those and nothing else)."""
    names = sorted({name for _, end in trunks if sends_auth(end) and (name := variable(end))})
    listed = " ".join(f"${{{name}}}" for name in names)
    return f"envsubst '{listed}' < {TEMPLATE} > /etc/asterisk/{SECRETS}"


def _wizard(trunks: Sequence[Labelled], header: str, *, secrets: bool) -> str:
    transports = sorted({f"transport-{end.transport}" for _, end in trunks})
    names = ", ".join(who(label, end) for label, end in trunks)
    lines = heading(
        ";",
        header,
        f"Asterisk PJSIP configuration wizard: the Exotel end of trunks {names}. Include it "
        f"from pjsip_wizard.conf (#include {WIZARD}); it needs the transport"
        f"{'s' if len(transports) > 1 else ''} {' and '.join(transports)} in pjsip.conf. Calls "
        f"in arrive in the dialplan context {CONTEXT}, ${{EXTEN}} being the DID in E.164.",
    )
    if secrets:
        lines += wrapped(
            ";",
            "",
            f"The digest passwords are not here: this file ends by including {SECRETS}, "
            f"which the deployment makes from {TEMPLATE} where Asterisk runs, with the "
            "variables set:",
            "",
            f"    {envsubst(trunks)}",
        )
    for label, end in trunks:
        lines += ["", *_section(label, end)]
    if secrets:
        lines += ["", f"#include {SECRETS}"]
    return text(lines)


def _section(label: str, end: End) -> list[str]:
    dids = f"DIDs {', '.join(end.numbers)}" if end.numbers else "no DIDs"
    said = f"{who(label, end)}: {dids}"
    if end.headers:
        said += (
            f"; Exotel's routes add the headers {', '.join(end.headers)} "
            f"(read them with PJSIP_HEADER(read,{end.headers[0]}))"
        )
    if end.outbound_numbers:
        said += f"; calls out show {end.outbound_numbers[0]}" + (
            " (the alias)" if end.alias else ""
        )
    why = no_calls_out(end)
    if why is not None:
        said += f"; no calls out: {why}"
    if not end.exotel_addresses:
        said += (
            f"; account {end.account} lists no signalling addresses, so calls in are matched "
            "by the address of Exotel's proxy (remote_hosts)"
        )
    lines = [
        *wrapped(";", said + "."),
        f"[{label}]",
        "type = wizard",
        f"transport = transport-{end.transport}",
        f"remote_hosts = {end.exotel_host}:{end.exotel_port}",
        # ; starts a comment anywhere on a line; \; is a semicolon (main/config.c)
        f"contact_pattern = sip:${{REMOTE_HOST}}\\;transport={end.transport}",
        f"sends_auth = {'yes' if sends_auth(end) else 'no'}",
        "sends_registrations = no",
        "accepts_registrations = no",
    ]
    if sends_auth(end) and end.credential is not None:
        lines.append(f"outbound_auth/username = {end.credential.username}")
    codecs = [CODECS[codec] for codec in end.codecs if codec in CODECS]
    lines += [f"endpoint/context = {CONTEXT}", f"endpoint/allow = !all,{','.join(codecs)}"]
    if end.transport == "tls":
        lines.append("endpoint/media_encryption = sdes")
    if end.outbound_numbers:
        lines.append(f"endpoint/from_user = {end.outbound_numbers[0]}")
    lines.append(f"endpoint/from_domain = {end.realm}")
    if end.exotel_addresses:
        lines.append(f"identify/match = {','.join(end.exotel_addresses)}")
    return lines


def _template(trunks: Sequence[Labelled], header: str) -> str:
    lines = heading(
        ";",
        header,
        f"A template, not Asterisk configuration: the digest passwords of the Exotel trunks "
        f"as environment references. Make {SECRETS} from it where Asterisk runs, with the "
        "variables set, and keep that file out of git and readable only by Asterisk:",
        "",
        f"    {envsubst(trunks)}",
        "",
        f"Each section adds its password to the section of {WIZARD} with its name ([name](+)).",
    )
    for label, end in trunks:
        assert end.credential is not None
        lines += [
            "",
            f"[{label}](+)",
            *wrapped(
                ";",
                f"{end.credential.username}, password_version {end.credential.password_version}",
            ),
            f"outbound_auth/password = {end.credential.password}",
        ]
    return text(lines)


__all__ = ["CONTEXT", "FILES", "SECRETS", "TEMPLATE", "WIZARD", "envsubst", "render"]
