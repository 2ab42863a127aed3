"""Trunk settings endpoints: the batch upsert (200 or 207 per item), list, remove.

Called through the sandbox's route table. The one known setting is
``trunk_external_alias``, the caller ID on outbound calls; its value must be E.164 but
need not be a DID mapped on the trunk (docs/exotel-api.md section 6a).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reconciler.sandbox import rules
from reconciler.sandbox.envelope import (
    JSON,
    Reply,
    batch,
    invalid,
    missing,
    per_item,
    single,
)
from reconciler.sandbox.request import ApiRequest, newest_first, paginate
from reconciler.sandbox.store import Setting, Trunk


def _upsert(call: ApiRequest, trunk: Trunk, name: str | None, value: str | None) -> JSON:
    name = rules.required(name, "name")
    if name not in rules.SETTING_NAMES:
        raise invalid(f"Unknown setting {name}")
    value = rules.required(value, "value")
    rules.check_e164(value, "trunk_external_alias")
    now = call.now()
    setting = trunk.settings.get(name)
    if setting is None:
        setting = trunk.settings[name] = Setting(name, value, trunk.trunk_sid, now, now)
    else:
        setting.value, setting.date_updated = value, now
    return setting.api()


def _typed_items(body: Mapping[str, Any]) -> list[tuple[str | None, str | None]]:
    items = rules.opt_list(body, "settings")
    return [(rules.opt_str(item, "name"), rules.opt_str(item, "value")) for item in items or []]


def set_settings(call: ApiRequest) -> Reply:
    items = _typed_items(rules.body_object(call.body))
    trunk = call.trunk()
    if not items:
        raise missing("settings")
    # The captured settings answer has no metadata.failed when nothing failed.
    results = per_item(items, lambda item: _upsert(call, trunk, *item))
    return batch(results, always_report_failed=False)


def list_settings(call: ApiRequest) -> Reply:
    return paginate(call, newest_first(call.trunk().settings), Setting.api)


def remove_setting(call: ApiRequest) -> Reply:
    return single(call.remove_child(call.trunk().settings, "name").api())
