"""SIP digest credential endpoints: add, list, change, remove.

Called through the sandbox's route table. Measured live (docs/exotel-api.md section 6a):
``user_name`` 1-32 and ``password`` 1-64 characters of ``[A-Za-z0-9_]``,
``friendly_name`` up to 32 of the same; user names unique per trunk. The password is
write-only: answers never carry it and the store keeps only its SHA-256.
"""

from __future__ import annotations

from reconciler.sandbox import rules
from reconciler.sandbox.envelope import Reply, duplicate, missing, single
from reconciler.sandbox.request import ApiRequest, newest_first, paginate
from reconciler.sandbox.store import Credential, Trunk, password_fingerprint
from reconciler.sip import digest

USER_NAME_MAX, PASSWORD_MAX, FRIENDLY_NAME_MAX = 32, 64, 32


def _check_user_free(trunk: Trunk, user_name: str, *, ignore: str | None = None) -> None:
    for credential in trunk.credentials.values():
        if credential.id != ignore and credential.user_name == user_name:
            raise duplicate(f"Credential with user_name '{user_name}' already exists")


def _friendly(value: str | None) -> str | None:
    if value is None or value == "":
        return None
    return rules.check_word(value, "friendly_name", max_length=FRIENDLY_NAME_MAX)


def add_credential(call: ApiRequest) -> Reply:
    body = rules.body_object(call.body)
    raw = {key: rules.opt_str(body, key) for key in ("user_name", "password", "friendly_name")}
    trunk = call.trunk()
    user_name = rules.check_word(
        rules.required(raw["user_name"], "user_name"), "user_name", max_length=USER_NAME_MAX
    )
    password = rules.check_word(
        rules.required(raw["password"], "password"), "password", max_length=PASSWORD_MAX
    )
    friendly_name = _friendly(raw["friendly_name"])
    _check_user_free(trunk, user_name)
    now = call.now()
    credential = Credential(
        call.new_id(),
        trunk.trunk_sid,
        user_name,
        friendly_name,
        password_fingerprint(password),
        now,
        now,
        digest.ha1(user_name, trunk.domain_name, password),
    )
    trunk.credentials[credential.id] = credential
    return single(credential.api())


def list_credentials(call: ApiRequest) -> Reply:
    return paginate(call, newest_first(call.trunk().credentials), Credential.api)


def update_credential(call: ApiRequest) -> Reply:
    body = rules.body_object(call.body)
    raw = {key: rules.opt_str(body, key) for key in ("user_name", "password", "friendly_name")}
    trunk = call.trunk()
    credential = call.child(trunk.credentials, call.params["id"])
    if all(value is None for value in raw.values()):
        raise missing("user_name")
    user_name, password = raw["user_name"], raw["password"]
    if user_name is not None:
        rules.check_word(user_name, "user_name", max_length=USER_NAME_MAX)
    if password is not None:
        rules.check_word(password, "password", max_length=PASSWORD_MAX)
    friendly_name = _friendly(raw["friendly_name"])
    if user_name is not None:
        _check_user_free(trunk, user_name, ignore=credential.id)
    if user_name is not None and user_name != credential.user_name:
        credential.user_name = user_name
        credential.ha1 = None  # the digest needs the password with the new name
    if password is not None:
        credential.password_sha256 = password_fingerprint(password)
        credential.ha1 = digest.ha1(credential.user_name, trunk.domain_name, password)
    if raw["friendly_name"] is not None:
        credential.friendly_name = friendly_name
    credential.date_updated = call.now()
    return single(credential.api())


def remove_credential(call: ApiRequest) -> Reply:
    return single(call.remove_child(call.trunk().credentials).api())
