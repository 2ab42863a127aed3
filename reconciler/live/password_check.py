"""A check of a SIP password that does not keep the password: is this the value last set?

Exotel never returns a credential's password, so the ledger records the
``password_version`` it set, and a changed value with the same version used to do nothing,
silently. Beside the version the ledger now keeps a check of the value it set: scrypt
(RFC 7914) over the password with a random 16-byte salt of its own, N=2^14, r=8, p=1
(16 MiB and about 40 ms a check here). A plan or an apply that has the password's
variable recomputes it, and a different value under the same version is a warning.

Why this and not a plain or keyed hash (docs/architecture.md, "Password checks"): the
ledger lives on a branch everyone with read access to the repository can read, so a
check must not let them recover the password. A plain hash of a short password falls to
a dictionary in seconds; a key would have to be in every job that plans, which is where
the password already is. A salted, memory-hard hash makes every guess cost 16 MiB and
tens of milliseconds, one salt at a time: a generated password (20 or more characters
of letters, digits and ``_``, over 110 bits) is out of reach, and a weak one costs an
attacker far more than the SIP traffic it would buy. The check is as strong as the
password: generate them.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1
SALT_BYTES, DIGEST_BYTES = 16, 32


def _digest(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode(), salt=salt, n=n, r=r, p=p, dklen=DIGEST_BYTES, maxmem=2**26
    )


def make(password: str) -> str:
    """``scrypt$N$r$p$salt$digest`` (base64), with a new random salt."""
    salt = os.urandom(SALT_BYTES)
    digest = _digest(password, salt, N, R, P)
    encoded = [base64.b64encode(part).decode() for part in (salt, digest)]
    return "$".join([SCHEME, str(N), str(R), str(P), *encoded])


def matches(password: str, check: str) -> bool | None:
    """Whether ``password`` is the one ``check`` was made from; None when the check is not
    one this version can read (then nothing is said about it)."""
    fields = check.split("$")
    if len(fields) != 6 or fields[0] != SCHEME:
        return None
    try:
        n, r, p = (int(field) for field in fields[1:4])
        salt, digest = (base64.b64decode(field, validate=True) for field in fields[4:])
    except ValueError:
        return None
    if not (2 <= n <= 2**20 and n & (n - 1) == 0 and 1 <= r <= 32 and 1 <= p <= 16):
        return None  # parameters that could make a check cost minutes, or nothing
    return hmac.compare_digest(_digest(password, salt, n, r, p), digest)
