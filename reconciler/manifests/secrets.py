"""Secrets: the values behind the manifests' ``${ENV_VAR}`` references, from the environment.

Called by the pipeline before a command's first API call (``validate`` never calls it,
so pull-request checks run without secrets). Only what the command needs is resolved:
the account's API key and token always; SIP passwords only for ``apply``, the one
command that sends them. A value is never printed, logged or put in a message; a
problem names the variable, never its value.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.errors import ConfigError
from reconciler.manifests.load import Manifests
from reconciler.manifests.models import SECRET_REFERENCE
from reconciler.manifests.problems import Loc, Origin, Problem, Severity

# Exotel refuses other passwords (measured live; docs/exotel-api.md, credentials).
PASSWORD = re.compile(r"[A-Za-z0-9_]{1,64}")


@dataclass(frozen=True)
class Secrets:
    """Resolved secret values, by environment variable name. Never printed or logged."""

    values: Mapping[str, str] = field(repr=False)

    def get(self, reference: str) -> str:
        match = SECRET_REFERENCE.fullmatch(reference)
        if match is None:
            raise KeyError(reference)
        return self.values[match[1]]


def require_secrets(
    manifests: Manifests,
    environ: Mapping[str, str],
    *,
    accounts: Sequence[str] | None = None,
    passwords: bool = True,
    partners: Sequence[str] = (),
) -> tuple[Secrets, list[Problem]]:
    """The secrets of the chosen accounts, from the environment; problems name what is missing.

    ``validate`` does not call this (pull-request checks run without secrets); every
    command that calls the API does, before its first call. ``partners``: the LiveKit
    partners whose API key and secret the command needs.
    """
    wanted = set(accounts) if accounts is not None else set(manifests.accounts)
    problems: list[Problem] = []
    values: dict[str, str] = {}

    def need(reference: str, origin: Origin, loc: Loc, *, password: bool = False) -> None:
        match = SECRET_REFERENCE.fullmatch(reference)
        if match is None:
            return
        variable = match[1]
        value = environ.get(variable, "")
        if not value:
            said = (
                "is set but empty (on GitHub: the secret it is given is missing from the "
                "job's environment)"
                if variable in environ
                else "is not set"
            )
            problems.append(
                origin.problem(
                    loc,
                    Severity.ERROR,
                    f"environment variable {variable} {said} (set it, or give a line "
                    f"{variable}=... in {BUNDLE})",
                )
            )
        elif password and not PASSWORD.fullmatch(value):
            problems.append(
                origin.problem(
                    loc,
                    Severity.ERROR,
                    f"the password in {variable} must be 1 to 64 letters, digits or underscores "
                    "(Exotel refuses anything else); generate one that is",
                )
            )
        else:
            values[variable] = value

    for name in sorted(wanted & set(manifests.accounts)):
        account = manifests.accounts[name]
        need(account.spec.api_key, account.origin, ("api_key",))
        need(account.spec.api_token, account.origin, ("api_token",))
    for name in sorted(set(partners) & set(manifests.partners)):
        partner = manifests.partners[name]
        for key in ("url", "api_key", "api_secret"):
            reference = getattr(partner.spec, key)
            if reference is not None:
                need(reference, partner.origin, (key,))
    for trunk in manifests.trunks:
        if trunk.spec.account in wanted:
            for index, credential in enumerate(trunk.spec.credentials):
                found = SECRET_REFERENCE.fullmatch(credential.password)
                # Commands without passwords still refuse one that is set and that Exotel
                # would refuse: a plan must not show a rotation that cannot happen.
                if passwords or (found is not None and environ.get(found[1])):
                    need(
                        credential.password,
                        trunk.origin,
                        ("credentials", index, "password"),
                        password=True,
                    )
    return Secrets(values), sorted(problems)


BUNDLE = "RECONCILER_SECRETS"  # several secrets in one: NAME=value lines
NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def environment() -> Mapping[str, str]:
    """The process environment, with the lines of ``RECONCILER_SECRETS`` (``NAME=value``,
    one a line; blank lines and ``#`` comments skipped) as variables beside it where the
    environment does not set them, or sets them empty. A config repository calling the
    reusable workflows passes its SIP passwords this way, as one secret, since a called
    workflow can only name the secrets it declares. A malformed line is an error naming
    its number, never its text."""
    bundle = os.environ.get(BUNDLE, "")
    if not bundle:
        return os.environ
    merged = dict(os.environ)
    for number, line in enumerate(bundle.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        name, equals, value = stripped.partition("=")
        if not equals or not NAME.fullmatch(name.strip()):
            raise ConfigError(
                f"{BUNDLE}: line {number} is not NAME=value (a variable name, =, the value)"
            )
        if not merged.get(name.strip()):  # empty: a secret the workflow names, unset here
            merged[name.strip()] = value
    return merged
