"""Field rules of Exotel's vSIP API, as the sandbox enforces them.

From docs/exotel-api.md sections 4 and 6a.

Called by the sandbox's handlers. Pure functions; each raises :class:`ApiError` with the
code Exotel uses. The reconciler has its own copy of these rules in its manifest
validation on purpose: the sandbox shares no code with it, so a bug in one is caught
by tests of the other.

Two kinds of check live here, because the API applies them at different stages:

* *type* checks (``body_object``, ``opt_str``...): wrong JSON types are a malformed
  body, error 1007, checked before the trunk is looked up;
* *value* checks (``check_...``): missing fields (1001) and broken rules (1002),
  checked after the trunk is known to exist.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from typing import Any

from reconciler.sandbox.envelope import bad_body, invalid, missing

TRUNK_NAME = re.compile(r"[A-Za-z0-9_]{1,16}")
# E.164: a plus, a country code not starting with 0, at most 15 digits in all. Eight
# digits is the shortest national number plus country code seen in practice.
E164 = re.compile(r"\+[1-9][0-9]{7,14}")
WORD = re.compile(r"[A-Za-z0-9_]+")
DOMAIN_SUFFIX = ".pstn.exotel.com"
NSO_CODES = frozenset({"ANY-ANY"})
AUTH_TYPES = frozenset({"IP-WHITELIST"})
MODES = frozenset({"pstn", "flow"})
SETTING_NAMES = frozenset({"trunk_external_alias"})
_LABEL = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?")
_DESTINATION = re.compile(
    r"(?:sip:)?(?P<host>[^:;]+):(?P<port>[0-9]{1,5});transport=(?P<transport>[A-Za-z]+)",
    re.IGNORECASE,
)
_DOTTED = re.compile(r"[0-9.]+")
_DIGITS = re.compile(r"[0-9]+")
MIN_MASK, MAX_MASK = 16, 32  # docs/exotel-api.md section 6: 16-32 (one source says 32 only)
MAX_PORT = 65535


# -- type checks (1007) -------------------------------------------------------------


def body_object(body: Any) -> Mapping[str, Any]:
    if not isinstance(body, dict):
        raise bad_body("Request body must be a JSON object")
    return body


def opt_str(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or isinstance(value, str):
        return value
    raise bad_body(f"{name} must be a string")


def opt_int(body: Mapping[str, Any], name: str) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad_body(f"{name} must be an integer")
    return value


def opt_list(body: Mapping[str, Any], name: str) -> list[Mapping[str, Any]] | None:
    value = body.get(name)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise bad_body(f"{name} must be an array of objects")
    return value


def required(value: str | None, name: str) -> str:
    if value is None or value == "":
        raise missing(name)
    return value


# -- value checks (1002) ------------------------------------------------------------


def check_trunk_name(name: str) -> str:
    if not TRUNK_NAME.fullmatch(name):
        raise invalid("trunk_name must be alphanumeric with underscores only, max 16 characters")
    return name


def check_nso_code(code: str) -> str:
    if code not in NSO_CODES:
        raise invalid("Nso code is invalid")
    return code


def check_auth_type(auth_type: str) -> str:
    if auth_type not in AUTH_TYPES:
        raise invalid("Auth type is invalid; only IP-WHITELIST is supported")
    return auth_type


def check_domain_name(domain: str) -> str:
    lowered = domain.lower()
    prefix = lowered.removesuffix(DOMAIN_SUFFIX)
    if prefix == lowered or not prefix or not all(_LABEL.fullmatch(p) for p in prefix.split(".")):
        raise invalid(f"Domain name must end with {DOMAIN_SUFFIX}")
    return domain


def check_e164(number: str, what: str = "PhoneNumber") -> str:
    if not E164.fullmatch(number):
        raise invalid(f"Invalid {what}")
    return number


def check_mode(mode: Any) -> str | None:
    if mode is None:
        return None
    if mode not in MODES:
        raise invalid("Mode must be pstn or flow")
    return str(mode)


def check_public_ipv4(ip: str) -> ipaddress.IPv4Address:
    try:
        address = ipaddress.IPv4Address(ip)
    except ValueError:
        raise invalid("Invalid ip") from None
    if (
        not address.is_global
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or address.is_loopback
        or address.is_link_local
    ):
        raise invalid("Invalid ip: only public IPv4 addresses can be whitelisted")
    return address


def check_mask(mask: Any) -> int:
    # A string mask is 1002, not 1007 (docs/exotel-api.md section 6a), so no type check first.
    if isinstance(mask, bool) or not isinstance(mask, int) or not MIN_MASK <= mask <= MAX_MASK:
        raise invalid(f"Mask must be an integer between {MIN_MASK} and {MAX_MASK}")
    return mask


def check_word(value: str, name: str, *, max_length: int) -> str:
    if not WORD.fullmatch(value) or len(value) > max_length:
        raise invalid(
            f"{name} must be 1 to {max_length} characters of letters, digits and underscore"
        )
    return value


def check_priority_weight(value: int, name: str) -> int:
    # Same range as DNS SRV priority and weight, which these fields mirror.
    if not 0 <= value <= MAX_PORT:
        raise invalid(f"{name} must be between 0 and {MAX_PORT}")
    return value


def is_fqdn(host: str) -> bool:
    labels = host.split(".")
    return (
        len(host) <= 253
        and len(labels) >= 2
        and all(_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def parse_destination(
    destination: str,
) -> tuple[str, int, str, ipaddress.IPv4Address | None]:
    """Split ``[sip:]host:port;transport=tls|tcp``: host, port, transport, address of an IP."""
    match = _DESTINATION.fullmatch(destination.strip())
    if match is None:
        raise invalid("Destination must look like <ip_or_fqdn>:<port>;transport=tls|tcp")
    host, port, transport = match["host"], int(match["port"]), match["transport"].lower()
    if transport not in {"tls", "tcp"}:
        raise invalid(f"Transport {transport} is not supported; use tls or tcp")
    if not 1 <= port <= MAX_PORT:
        raise invalid(f"Port must be between 1 and {MAX_PORT}")
    if _DOTTED.fullmatch(host):
        try:
            return host, port, transport, ipaddress.IPv4Address(host)
        except ValueError:
            raise invalid("Destination is not a valid Ip or Fqdn") from None
    if not is_fqdn(host):
        raise invalid("Destination is not a valid Ip or Fqdn")
    return host, port, transport, None


def page_params(query: Mapping[str, str]) -> tuple[int, int]:
    """``offset`` and ``page_size`` (default 0 and 50; page_size 1-100): 1002 otherwise."""
    offset_text, size_text = query.get("offset", "0"), query.get("page_size", "50")
    if not (_DIGITS.fullmatch(offset_text) and _DIGITS.fullmatch(size_text)):
        raise invalid("offset and page_size must be non-negative integers")
    if len(size_text) > 3 or not 1 <= int(size_text) <= 100:
        raise invalid("page_size must be between 1 and 100")
    # Any offset past the end is an empty page, so a huge one need not be read exactly
    # (and Python refuses to read integers of more than 4300 digits).
    offset = int(offset_text) if len(offset_text) <= 18 else 10**18
    return offset, int(size_text)
