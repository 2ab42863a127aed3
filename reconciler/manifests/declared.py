"""What the manifests declare, each with where it was written: the records every stage
passes around (``Declared``, ``NamedAccount``), and where an account's ledger lives.

Made by ``manifests.load``; read by the pipeline, the ledger and the rules across objects
(``manifests.consistency``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Generic, TypeVar

from reconciler.manifests.models import AccountSpec, PartnerSpec
from reconciler.manifests.problems import Origin

T = TypeVar("T")


@dataclass(frozen=True)
class Declared(Generic[T]):
    """A validated model and where it was written."""

    spec: T
    origin: Origin


@dataclass(frozen=True)
class NamedAccount:
    name: str
    spec: AccountSpec
    origin: Origin


@dataclass(frozen=True)
class NamedPartner:
    name: str
    spec: PartnerSpec
    origin: Origin


def ledger_path(account: NamedAccount) -> str:
    return account.spec.ledger or f"state/{account.name}.json"
