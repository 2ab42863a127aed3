"""One manifest document: ``accounts:``, ``partners:``, ``trunks:``, ``routes:``, or any
of them.

Used by ``load`` (which keys a document may hold) and ``schema`` (the JSON Schema of a
manifest file). Pure.
"""

from __future__ import annotations

from pydantic import Field

from reconciler.manifests.models import AccountSpec, PartnerSpec, Spec, TrunkSpec
from reconciler.manifests.routes import RouteSpec


class ManifestFile(Spec):
    """One YAML document: accounts, trunks, routes, or any of them."""

    accounts: dict[str, AccountSpec] = Field(
        default_factory=dict, description="accounts by name (the name trunks refer to)"
    )
    partners: dict[str, PartnerSpec] = Field(
        default_factory=dict,
        description="partner platforms by name (the name trunks and accounts refer to)",
    )
    trunks: tuple[TrunkSpec, ...] = Field((), description="trunks")
    routes: tuple[RouteSpec, ...] = Field(
        (), description="inbound routing and bot handoff, served by reconciler serve"
    )
