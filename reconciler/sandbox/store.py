"""The sandbox's data: accounts, trunks and everything on them, with the ids Exotel hands out.

Called by the sandbox's handlers (which validate and then mutate) and by its server
(which persists and resets). No I/O here: :meth:`Store.dump` and :meth:`Store.load`
turn the data into JSON-ready dictionaries and back; ``persist`` writes them.

Ids follow docs/exotel-api.md section 6a: trunk SIDs are ``trmum1`` plus 22 lowercase
alphanumerics, child ids are increasing integers per account as digit strings, never
reused, and request ids are 32 hex characters. Seeded :class:`random.Random` sources make
SIDs and request ids reproducible under ``--seed`` (two sources, so SIDs do not
depend on the number of reads in between).
"""

from __future__ import annotations

import hashlib
import random
import string
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from reconciler.sandbox.envelope import JSON, not_found

SID_PREFIX = "trmum1"  # the Mumbai shape of docs/exotel-api.md section 1: 6 + 22 = 28 characters
SID_ALPHABET = string.ascii_lowercase + string.digits
SID_RANDOM_LENGTH = 22
FORMAT_VERSION = 1


def utc_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def password_fingerprint(password: str) -> str:
    """What the sandbox keeps of a SIP password: enough for tests to see a rotation."""
    return hashlib.sha256(password.encode()).hexdigest()


@dataclass
class PhoneNumber:
    id: str
    phone_number: str
    trunk_sid: str
    mode: str | None
    date_created: str
    date_updated: str

    def api(self) -> JSON:
        return {
            "id": self.id,
            "phone_number": self.phone_number,
            "trunk_sid": self.trunk_sid,
            "date_created": self.date_created,
            "date_updated": self.date_updated,
            "mode": self.mode,
        }


@dataclass
class WhitelistedIp:
    id: str
    ip: str
    mask: int
    trunk_sid: str
    date_created: str
    date_updated: str

    def api(self) -> JSON:
        return {
            "id": self.id,
            "mask": self.mask,
            "trunk_sid": self.trunk_sid,
            "ip": self.ip,
            "friendly_name": None,
            "date_created": self.date_created,
            "date_updated": self.date_updated,
        }


@dataclass
class Destination:
    id: str
    destination: str
    priority: int
    weight: int
    trunk_sid: str
    date_created: str
    date_updated: str

    def api(self) -> JSON:
        return {
            "id": self.id,
            "destination": self.destination,
            "date_created": self.date_created,
            "date_updated": self.date_updated,
            "type": "public",
            "priority": self.priority,
            "weight": self.weight,
            "trunk_sid": self.trunk_sid,
        }


@dataclass
class Credential:
    id: str
    trunk_sid: str
    user_name: str
    friendly_name: str | None
    password_sha256: str
    date_created: str
    date_updated: str
    # What a SIP server keeps for digest authentication (RFC 2617 HA1, realm: the trunk's
    # domain_name), so the gateway can challenge partners; None for a credential renamed
    # without a new password, or saved by a sandbox before it kept one.
    ha1: str | None = None

    def api(self) -> JSON:
        # The password is write-only: never in an answer.
        return {
            "id": self.id,
            "trunk_sid": self.trunk_sid,
            "user_name": self.user_name,
            "friendly_name": self.friendly_name,
            "date_created": self.date_created,
            "date_updated": self.date_updated,
        }


@dataclass
class Setting:
    name: str
    value: str
    trunk_sid: str
    date_created: str
    date_updated: str

    def api(self) -> JSON:
        return asdict(self)


@dataclass
class Trunk:
    account_sid: str
    trunk_sid: str
    trunk_name: str
    nso_code: str
    domain_name: str
    auth_type: str
    status: str
    date_created: str
    date_updated: str
    phone_numbers: dict[str, PhoneNumber] = field(default_factory=dict)
    whitelisted_ips: dict[str, WhitelistedIp] = field(default_factory=dict)
    destination_uris: dict[str, Destination] = field(default_factory=dict)
    credentials: dict[str, Credential] = field(default_factory=dict)
    settings: dict[str, Setting] = field(default_factory=dict)

    def api(self) -> JSON:
        base = f"/v2/accounts/{self.account_sid}/trunks/{self.trunk_sid}"
        return {
            "trunk_name": self.trunk_name,
            "date_created": self.date_created,
            "date_updated": self.date_updated,
            "trunk_sid": self.trunk_sid,
            "status": self.status,
            "domain_name": self.domain_name,
            "auth_type": self.auth_type,
            "registration_enabled": "disabled",
            "edge_preference": "auto",
            "nso_code": self.nso_code,
            "secure_trunking": "disabled",
            "destination_uris": f"{base}/destination-uris",
            "whitelisted_ips": f"{base}/whitelisted-ips",
            "credentials": f"{base}/credentials",
            "phone_numbers": f"{base}/phone-numbers",
        }


@dataclass
class Account:
    sid: str
    trunks: dict[str, Trunk] = field(default_factory=dict)
    # Indexes kept beside the data: trunk name -> SID, DID -> (trunk SID, mapping id).
    names: dict[str, str] = field(default_factory=dict)
    dids: dict[str, tuple[str, str]] = field(default_factory=dict)

    def trunk(self, trunk_sid: str) -> Trunk:
        try:
            return self.trunks[trunk_sid]
        except KeyError:
            raise not_found() from None

    def add_trunk(self, trunk: Trunk) -> None:
        self.trunks[trunk.trunk_sid] = trunk
        self.names[trunk.trunk_name] = trunk.trunk_sid
        for number in trunk.phone_numbers.values():
            self.dids[number.phone_number] = (trunk.trunk_sid, number.id)

    def remove_trunk(self, trunk: Trunk) -> None:
        del self.trunks[trunk.trunk_sid]
        del self.names[trunk.trunk_name]
        for number in trunk.phone_numbers.values():
            del self.dids[number.phone_number]


class Store:
    """Every account's data, the id counters and the random source for SIDs."""

    def __init__(self, account_sids: list[str], *, seed: int | None = None) -> None:
        self.seed = seed
        self.accounts: dict[str, Account] = {}
        self.next_id: dict[str, int] = {}
        self.clock: Callable[[], str] = utc_now
        self.reset(account_sids)

    def reset(self, account_sids: list[str]) -> None:
        self.accounts = {sid: Account(sid) for sid in account_sids}
        self.restarts = 0
        self.next_id = dict.fromkeys(account_sids, 1)
        # Two sources, so that SIDs do not depend on how many reads came before.
        self.sid_rng = random.Random(None if self.seed is None else f"{self.seed}:sids")
        self.request_rng = random.Random(None if self.seed is None else f"{self.seed}:requests")

    def account(self, sid: str) -> Account:
        if sid not in self.accounts:
            self.accounts[sid] = Account(sid)
            self.next_id[sid] = 1
        return self.accounts[sid]

    def new_id(self, account_sid: str) -> str:
        value = self.next_id.get(account_sid, 1)
        self.next_id[account_sid] = value + 1
        return str(value)

    def new_trunk_sid(self) -> str:
        while True:
            sid = SID_PREFIX + "".join(self.sid_rng.choices(SID_ALPHABET, k=SID_RANDOM_LENGTH))
            # A restart with the same --seed replays the same SIDs: skip the ones in use.
            if not any(sid in account.trunks for account in self.accounts.values()):
                return sid

    def new_request_id(self) -> str:
        return f"{self.request_rng.getrandbits(128):032x}"

    def dump(self) -> JSON:
        """Everything, JSON-ready: the persisted state file and ``GET /_sandbox/state``."""
        return {
            "format_version": FORMAT_VERSION,
            "next_id": dict(self.next_id),
            # SIDs go on where they were (they are only issued with a change, which is
            # saved), so a restart never re-issues one, even a deleted trunk's. Request ids
            # are issued on every read, which is not saved: each restart gets a new source.
            "sid_random": _dump_random(self.sid_rng),
            "restarts": self.restarts,
            "accounts": {
                sid: {"trunks": [_dump_trunk(t) for t in account.trunks.values()]}
                for sid, account in self.accounts.items()
            },
        }

    def load(self, document: JSON) -> None:
        """Replace the data with a :meth:`dump` document (raises ValueError if malformed)."""
        if document.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"unsupported state format_version {document.get('format_version')!r}")
        try:
            self._fill(document)
            self.restarts = int(document.get("restarts", 0)) + 1
            self.request_rng = random.Random(
                None if self.seed is None else f"{self.seed}:requests:{self.restarts}"
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise ValueError(f"malformed state document: {exc!r}") from exc

    def restore(self, document: JSON) -> None:
        """Go back to a :meth:`dump` taken earlier in this run: undo a change not saved.

        Unlike :meth:`load` it is no restart: the request-id source goes on as it was.
        """
        self.accounts = {}
        self.next_id = {}
        self._fill(document)
        self.restarts = int(document["restarts"])

    def _fill(self, document: JSON) -> None:
        for sid, raw_account in document["accounts"].items():
            account = self.account(sid)
            for raw in raw_account["trunks"]:
                account.add_trunk(_load_trunk(sid, raw))
        for sid, value in document["next_id"].items():
            self.next_id[sid] = max(int(value), self.next_id.get(sid, 1))
        if "sid_random" in document:
            self.sid_rng.setstate(_load_random(document["sid_random"]))


def _dump_random(source: random.Random) -> list[Any]:
    version, internal, gauss = source.getstate()
    return [version, list(internal), gauss]


def _load_random(saved: list[Any]) -> tuple[Any, ...]:
    version, internal, gauss = saved
    return (int(version), tuple(int(word) for word in internal), gauss)


_CHILDREN: dict[str, type[Any]] = {
    "phone_numbers": PhoneNumber,
    "whitelisted_ips": WhitelistedIp,
    "destination_uris": Destination,
    "credentials": Credential,
}


def _dump_trunk(trunk: Trunk) -> JSON:
    document = {
        key: value for key, value in asdict(trunk).items() if key not in {*_CHILDREN, "settings"}
    }
    for name in _CHILDREN:
        document[name] = [asdict(child) for child in getattr(trunk, name).values()]
    document["settings"] = [asdict(setting) for setting in trunk.settings.values()]
    return document


def _load_trunk(account_sid: str, raw: JSON) -> Trunk:
    scalars = {k: v for k, v in raw.items() if k not in {*_CHILDREN, "settings"}}
    scalars["account_sid"] = account_sid
    trunk = Trunk(**scalars)
    for name, kind in _CHILDREN.items():
        children = getattr(trunk, name)
        for child in raw.get(name, []):
            children[child["id"]] = kind(**child)
    for setting in raw.get("settings", []):
        trunk.settings[setting["name"]] = Setting(**setting)
    return trunk
