"""One probe's exchange on one connection: its identities, and TLS as Exotel's side
would use it.

Used by ``checking.probe`` (OPTIONS) and ``checking.invite``; framing on the stream is
``sip.stream``'s.
"""

from __future__ import annotations

import asyncio
import ssl

from reconciler.checking.results import Result, Settings
from reconciler.sip import message as sip


def context(ca: str | None, *, verify: bool) -> ssl.SSLContext:
    """TLS as Exotel's side would use it: verified against the system's CAs, or ``ca``."""
    if not verify:
        unverified = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        unverified.check_hostname = False
        unverified.verify_mode = ssl.CERT_NONE
        return unverified
    try:
        return ssl.create_default_context(cafile=ca)
    except (OSError, ssl.SSLError) as exc:
        raise ValueError(f"cannot read the CA file {ca}: {exc}") from exc


class Dialog:
    """The identities of one exchange on one connection (RFC 3261 8.1.1)."""

    def __init__(self, result: Result, writer: asyncio.StreamWriter, settings: Settings) -> None:
        destination = result.destination
        local = writer.get_extra_info("sockname")
        self.local_host, self.local_port = str(local[0]), int(local[1])
        self.sent_by = (
            f"[{self.local_host}]:{self.local_port}"
            if ":" in self.local_host
            else f"{self.local_host}:{self.local_port}"
        )
        self.transport = destination.transport
        self.target = destination.uri.partition(";")[0]
        self.call_id = f"{sip.token()}@reconciler"
        self.tag = sip.token(6)
        self.writer = writer
        self.user_agent = settings.user_agent
        self.user, self.display, self.domain = "check", "reconciler check", self.sent_by

    def as_exotel(self, caller: str, domain: str) -> None:
        """Speak as Exotel's gateway does on a call to a trunk: From the caller at the
        account's ``pstn.exotel.com`` domain, Contact the caller here (docs/exotel-api.md,
        section 9; ``sandbox.voice.dialer``)."""
        self.user, self.display, self.domain = caller, caller, domain
        self.call_id = f"{sip.token()}@{domain}"

    def via(self, branch: str) -> str:
        return f"{sip.SIP_VERSION}/{self.transport.upper()} {self.sent_by};branch={branch};rport"

    @property
    def from_(self) -> str:
        return f'"{self.display}" <sip:{self.user}@{self.domain}>;tag={self.tag}'

    @property
    def contact(self) -> str:
        return f"<sip:{self.user}@{self.sent_by};transport={self.transport}>"

    def uri(self, user: str | None = None) -> str:
        return f"sip:{user + '@' if user else ''}{self.target};transport={self.transport}"

    async def send(self, request: sip.Request) -> None:
        self.writer.write(request.encode(self.user_agent))
        await self.writer.drain()
