"""One canonical form per value, for manifest values and Exotel's answers alike.

Called by ``models`` (while validating what users write) and by ``exotel.client`` (while
reading what the API returns), so that both sides of a diff are spelled the same way
(docs/architecture.md, "One canonical form": a plan right after an apply is empty). Pure.

Each function takes what a person or the API may write and returns the canonical
spelling, or raises ``ValueError`` with a message that says what is wrong and what
would be right. Messages never repeat a secret: no function here sees one.

Canonical forms:
    E.164 number        "+918040264208"              (spaces, dashes and dots removed)
    whitelisted IP      "13.126.40.0/24"             (always with a mask; /32 implied)
    destination URI     "sip.company.com:5061;transport=tls"
                        (no "sip:" prefix, lower-case host and transport)
    DID mode            "pstn" | "flow"              (the API's null means pstn)
    domain name         lower case
"""

from __future__ import annotations

import ipaddress
import re

TRUNK_NAME = re.compile(r"[A-Za-z0-9_]{1,16}")
WORD = re.compile(r"[A-Za-z0-9_]+")
_E164 = re.compile(r"\+[1-9][0-9]{7,14}")
_NUMBER_NOISE = re.compile(r"[\s().-]")
_LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DOTTED = re.compile(r"[0-9.]+")
_DESTINATION = re.compile(r"(?P<host>[^:;\s]+)(?::(?P<port>[^;]*))?(?P<params>(?:;.*)?)")
DOMAIN_SUFFIX = ".pstn.exotel.com"
MIN_MASK, MAX_MASK = 16, 32  # what the API accepts (docs/exotel-api.md section 6)
MAX_PORT = 65535
TRANSPORTS = ("tls", "tcp")  # UDP is not supported by Exotel's vSIP trunks
USUAL_PORTS = {"tls": 5061, "tcp": 5060}
MODES = ("pstn", "flow")
INDIA = "+91"
INDIAN_NATIONAL_DIGITS = 10


def e164_hint(digits: str) -> str:
    """The E.164 number a national or bare number most likely means, as advice."""
    if len(digits) == INDIAN_NATIONAL_DIGITS:
        return f'"{INDIA}{digits}" if it is an Indian number'
    if digits.startswith("0") and len(digits) == INDIAN_NATIONAL_DIGITS + 1:
        return f'"{INDIA}{digits[1:]}" (drop the trunk prefix 0)'
    return f'"+{digits}"'


def e164(text: str) -> str:
    """``+`` then 8 to 15 digits, the first not 0; readable separators are dropped."""
    compact = _NUMBER_NOISE.sub("", text)
    if _E164.fullmatch(compact):
        return compact
    digits = compact.lstrip("+")
    if digits.isdigit() and not compact.startswith("+"):
        raise ValueError(
            f"{text!r} is not E.164: write the country code after a +, like {e164_hint(digits)}"
        )
    raise ValueError(
        f'{text!r} is not an E.164 number: write + and 8 to 15 digits, like "+918040264208"'
    )


TOLL_FREE = ("1800", "1860")  # Indian toll-free and shared-cost numbers: 11 national digits


def indian(number: str) -> str:
    """An E.164 number, checked for India's lengths when it is +91: 10 national digits,
    or 11 for a toll-free 1800 or 1860 number. Manifests only: what Exotel or a caller
    sends is read as it comes."""
    if not number.startswith(INDIA):
        return number
    national = number[len(INDIA) :]
    if len(national) == INDIAN_NATIONAL_DIGITS or (
        len(national) == INDIAN_NATIONAL_DIGITS + 1 and national.startswith(TOLL_FREE)
    ):
        return number
    raise ValueError(
        f"{number} has {len(national)} digits after +91; an Indian number has 10 (11 for a "
        "toll-free 1800 or 1860 number): check for a digit missing or repeated"
    )


# IANA's special-purpose IPv4 ranges (RFC 6890 and successors): none is a public address,
# and Exotel refuses to whitelist any of them. Kept as integers: this runs for every
# whitelisted IP of every trunk, and ipaddress's own properties are slow.
_SPECIAL: tuple[tuple[int, int, str], ...] = tuple(
    (int(network.network_address), int(network.netmask), label)
    for network, label in (
        (ipaddress.IPv4Network(text), label)
        for text, label in (
            ("0.0.0.0/32", "the unspecified address"),
            ("0.0.0.0/8", "a reserved address"),
            ("10.0.0.0/8", "a private address"),
            ("100.64.0.0/10", "a carrier-grade NAT address (RFC 6598)"),
            ("127.0.0.0/8", "a loopback address"),
            ("169.254.0.0/16", "a link-local address"),
            ("172.16.0.0/12", "a private address"),
            ("192.0.0.0/24", "a reserved address"),
            ("192.0.2.0/24", "a documentation address (RFC 5737)"),
            ("192.88.99.0/24", "a reserved address"),
            ("192.168.0.0/16", "a private address"),
            ("198.18.0.0/15", "a benchmarking address (RFC 2544)"),
            ("198.51.100.0/24", "a documentation address (RFC 5737)"),
            ("203.0.113.0/24", "a documentation address (RFC 5737)"),
            ("224.0.0.0/4", "a multicast address"),
            ("240.0.0.0/4", "a reserved address"),
        )
    )
)


def public_ipv4_problem(address: ipaddress.IPv4Address) -> str | None:
    """Why Exotel would refuse to whitelist this address, or None if it is public."""
    value = int(address)
    for network, netmask, label in _SPECIAL:
        if value & netmask == network:
            return label
    return None


def ipv4_address(text: str) -> ipaddress.IPv4Address:
    try:
        return ipaddress.IPv4Address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 address") from None


def whitelisted_ip(text: str) -> str:
    """``a.b.c.d`` or ``a.b.c.d/nn`` -> ``a.b.c.d/nn``: public, mask 16-32, no host bits."""
    ip_text, slash, mask_text = text.strip().partition("/")
    address = ipv4_address(ip_text)
    if slash:
        if not mask_text.isdigit():
            raise ValueError(f"{text!r}: the mask must be a number from {MIN_MASK} to {MAX_MASK}")
        mask = int(mask_text)
    else:
        mask = MAX_MASK
    return ip_with_mask(address, mask, written=text)


def ip_with_mask(address: ipaddress.IPv4Address, mask: int, *, written: str | None = None) -> str:
    """The canonical form of an (address, mask) pair, as the API returns them separately."""
    shown = written if written is not None else f"{address}/{mask}"
    if not MIN_MASK <= mask <= MAX_MASK:
        raise ValueError(
            f"{shown!r}: Exotel accepts masks from /{MIN_MASK} to /{MAX_MASK}; "
            f"split a wider range into /{MIN_MASK} networks"
        )
    problem = public_ipv4_problem(address)
    if problem:
        raise ValueError(
            f"{address} is {problem}; Exotel whitelists only public IPv4 addresses "
            "(use your SBC's public address)"
        )
    value = int(address)
    netmask = (0xFFFFFFFF << (MAX_MASK - mask)) & 0xFFFFFFFF
    if value & ~netmask:
        network = ipaddress.IPv4Address(value & netmask)
        raise ValueError(f"{shown!r} has host bits set; write the network address {network}/{mask}")
    return f"{address}/{mask}"


def network_range(canonical_ip: str) -> tuple[int, int]:
    """(first, last) address of a canonical ``a.b.c.d/nn`` as integers, for containment."""
    text, _, mask_text = canonical_ip.partition("/")
    first = int(ipaddress.IPv4Address(text))
    return first, first + (1 << (MAX_MASK - int(mask_text))) - 1


def is_fqdn(host: str) -> bool:
    labels = host.split(".")
    return (
        len(host) <= 253
        and len(labels) >= 2
        and all(_LABEL.fullmatch(label) for label in labels)
        and not labels[-1].isdigit()
    )


def destination(text: str) -> str:
    """``[sip:]host:port;transport=tls|tcp`` -> ``host:port;transport=x`` (lower-case host)."""
    stripped = text.strip()
    if stripped[:5].lower() == "sips:":
        raise ValueError(
            f"{text!r}: write sip:, not sips: (TLS is chosen with ;transport=tls, as in "
            f"{stripped[5:].split(';')[0]};transport=tls)"
        )
    body = stripped[4:] if stripped[:4].lower() == "sip:" else stripped
    if body.startswith("[") or body.split(";")[0].count(":") > 1:
        raise ValueError(
            f"{text!r}: Exotel trunks take IPv4 addresses and host names, not IPv6: use the "
            "SBC's IPv4 address or a host name"
        )
    match = _DESTINATION.fullmatch(body)
    if match is None:
        raise ValueError(f"{text!r} is not a destination: write host:port;transport=tls")
    host = match["host"].lower()
    if _DOTTED.fullmatch(host):
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"{text!r}: {host} is not an IPv4 address") from None
    elif host.endswith(".") and is_fqdn(host[:-1]):
        raise ValueError(f"{text!r}: drop the trailing dot of the host name: {host[:-1]}")
    elif not is_fqdn(host):
        raise ValueError(f"{text!r}: {match['host']!r} is neither an IPv4 address nor a host name")
    params = [p for p in match["params"].split(";") if p]
    keys = [p.partition("=")[0].lower() for p in params]
    if keys != ["transport"]:
        extra = [p for p in params if p.partition("=")[0].lower() != "transport"]
        if extra:
            raise ValueError(f"{text!r}: only the transport parameter is allowed, not {extra[0]!r}")
        if match["port"] is None:  # both missing: say both at once, not one per run
            raise ValueError(
                f"{text!r}: add the port and the transport, like {host}:5061;transport=tls "
                "(or :5060;transport=tcp)"
            )
        raise ValueError(f"{text!r}: add the transport, like {body};transport=tls")
    transport = params[0].partition("=")[2].lower()
    if transport not in TRANSPORTS:
        raise ValueError(
            f"{text!r}: transport {transport or '(empty)'!r} is not supported; "
            "Exotel vSIP trunks take tls or tcp (UDP is not supported)"
        )
    port_text = match["port"]
    if port_text is None:
        raise ValueError(
            f"{text!r}: add the port, usually {USUAL_PORTS[transport]} for {transport}: "
            f"{host}:{USUAL_PORTS[transport]};transport={transport}"
        )
    if not port_text.isdigit() or not 1 <= int(port_text) <= MAX_PORT:
        raise ValueError(f"{text!r}: the port must be a number from 1 to {MAX_PORT}")
    return f"{host}:{int(port_text)};transport={transport}"


def destination_ip(canonical: str) -> ipaddress.IPv4Address | None:
    """The address of an IP destination (canonical form), or None for a host name."""
    host = canonical.partition(":")[0]
    return ipaddress.IPv4Address(host) if _DOTTED.fullmatch(host) else None


def mode(value: str | None) -> str:
    """The API answers null for a DID mapped without a mode; it behaves as pstn."""
    if value is None:
        return "pstn"
    if value not in MODES:
        raise ValueError(f"mode {value!r} is not one of {' or '.join(MODES)}")
    return value


def trunk_name(text: str) -> str:
    if not text:
        raise ValueError("trunk name is empty: give 1 to 16 letters, digits or underscores")
    if not TRUNK_NAME.fullmatch(text):
        raise ValueError(
            f"trunk name {text!r} must be 1 to 16 letters, digits or underscores "
            f"(Exotel's rule), like {_suggest_word(text, 16)!r}"
        )
    return text


def word(text: str, *, what: str, max_length: int) -> str:
    """A value Exotel accepts only as ``[A-Za-z0-9_]``, up to ``max_length`` characters."""
    if not WORD.fullmatch(text) or len(text) > max_length:
        raise ValueError(
            f"{what} {text!r} must be 1 to {max_length} letters, digits or underscores "
            f"(Exotel refuses anything else), like {_suggest_word(text, max_length)!r}"
        )
    return text


def _suggest_word(text: str, max_length: int) -> str:
    return (re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "name")[:max_length]


def domain_name(text: str) -> str:
    lowered = text.strip().lower()
    prefix = lowered.removesuffix(DOMAIN_SUFFIX)
    if prefix == lowered or not prefix or not all(_LABEL.fullmatch(p) for p in prefix.split(".")):
        raise ValueError(
            f"domain name {text!r} must end with {DOMAIN_SUFFIX}, like <account sid>{DOMAIN_SUFFIX}"
        )
    return lowered


def default_domain_name(account_sid: str) -> str:
    return f"{account_sid.lower()}{DOMAIN_SUFFIX}"


def ip_key(ip: str, mask: int) -> str:
    """How a whitelisted IP the API returns (ip and mask apart) is keyed: ``a.b.c.d/nn``.

    Not validated: an entry made by hand with host bits set keeps them, so it differs
    from every canonical manifest value and is planned away."""
    return f"{ip}/{mask}"
