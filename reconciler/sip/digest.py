"""HTTP digest authentication as SIP uses it (RFC 3261 section 22; RFC 2617 and RFC 7616,
MD5 with ``qop=auth``): the challenge a UAS sends, the credentials a UAC answers with,
and the check of those credentials.

Pure. The sandbox challenges partners' INVITEs with it (Exotel's trunks accept digest
credentials set through the API); a UAC answers a challenge with it. A password never
leaves this module: only its digest goes on the wire.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^\s,]+)\s*,?')


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def params(value: str) -> dict[str, str]:
    """The parameters of a ``Digest ...`` header value, unquoted, names lower-cased."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme.lower() != "digest":
        return {}
    found = {}
    for name, raw in _PARAM.findall(rest):
        quoted = raw.startswith('"')
        found[name.lower()] = re.sub(r"\\(.)", r"\1", raw[1:-1]) if quoted else raw
    return found


def challenge(realm: str, *, nonce: str | None = None, stale: bool = False) -> str:
    """A ``WWW-Authenticate`` / ``Proxy-Authenticate`` value (RFC 3261 22.1)."""
    nonce = nonce or secrets.token_hex(16)
    extra = ", stale=TRUE" if stale else ""
    return f'Digest realm="{realm}", nonce="{nonce}", algorithm=MD5, qop="auth"{extra}'


def ha1(username: str, realm: str, password: str) -> str:
    """What a server keeps of a digest password (RFC 2617 3.2.2.2, as Kamailio's
    ``subscriber.ha1``): enough to check a response, not to recover the password."""
    return _md5(f"{username}:{realm}:{password}")


def response(
    *,
    secret: str,
    nonce: str,
    method: str,
    uri: str,
    qop: str | None,
    cnonce: str = "",
    nc: str = "00000001",
) -> str:
    """The ``response`` value of RFC 2617 3.2.2.1, from ``secret``: the HA1."""
    ha1 = secret
    ha2 = _md5(f"{method}:{uri}")
    if qop:
        return _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _md5(f"{ha1}:{nonce}:{ha2}")


def authorization(challenged: str, *, username: str, password: str, method: str, uri: str) -> str:
    """The ``Authorization`` / ``Proxy-Authorization`` value answering a challenge."""
    said = params(challenged)
    realm, nonce = said.get("realm", ""), said.get("nonce", "")
    qop = "auth" if "auth" in said.get("qop", "").split(",") else None
    cnonce = secrets.token_hex(8)
    value = response(
        secret=ha1(username, realm, password),
        nonce=nonce,
        method=method,
        uri=uri,
        qop=qop,
        cnonce=cnonce,
    )
    header = (
        f'Digest username="{username}", realm="{realm}", nonce="{nonce}", uri="{uri}", '
        f'response="{value}", algorithm=MD5'
    )
    if qop:
        header += f', qop={qop}, nc=00000001, cnonce="{cnonce}"'
    return header


@dataclass(frozen=True)
class Verdict:
    ok: bool
    username: str | None
    why: str  # for a refusal's reason phrase and the call record; never a secret


def verify(
    value: str, *, method: str, realm: str, nonces: set[str], secrets_: Mapping[str, str]
) -> Verdict:
    """Check an ``Authorization`` header against the nonces this side issued and the
    credentials it knows (username -> HA1)."""
    said = params(value)
    username = said.get("username")
    if not username or not said.get("response", "").isascii() or "response" not in said:
        return Verdict(False, username, "credentials malformed")
    if said.get("qop") != "auth":  # this side offers qop=auth: no downgrade to RFC 2069
        return Verdict(False, username, "credentials without qop=auth")
    if said.get("realm") != realm:
        return Verdict(False, username, "credentials for another realm")
    if said.get("nonce") not in nonces:
        return Verdict(False, username, "stale or unknown nonce")
    known = secrets_.get(username)
    if known is None:
        return Verdict(False, username, f"no credential {username} on this trunk")
    expected = response(
        secret=known,
        nonce=said["nonce"],
        method=method,
        uri=said.get("uri", ""),
        qop=said.get("qop"),
        cnonce=said.get("cnonce", ""),
        nc=said.get("nc", "00000001"),
    )
    if not hmac.compare_digest(expected, said["response"]):
        return Verdict(False, username, f"wrong password for {username}")
    return Verdict(True, username, "authenticated")
