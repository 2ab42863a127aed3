"""``reconciler import``: bring trunks that already exist under management.

Called by the CLI. Under the ledger's lock (an apply must not run while the ledger
grows), reads each trunk (and, in profile ``full``, finds it in the trunk
list for its name and domain), writes one canonical manifest file per trunk, and
records it in the ledger, so that a plan right after an import is empty, apart from the
credentials: the API never returns passwords, so each gets a ``${ENV}`` placeholder with
``password_version: 1`` and the next apply sets the password from that variable.

Profile ``minimal`` cannot read a trunk's name: give it as ``--trunk-sid SID=NAME``.
Existing manifest files, declared trunks and ledger entries are never overwritten
unless ``--force`` says so. A trunk the manifests already declare but the ledger does not
hold (a create whose answer was lost, or not recorded when the disk was full) is only
recorded in the ledger: its manifest stays as written, and the next plan shows what
differs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from reconciler.errors import ConfigError, NotFound
from reconciler.exotel.client import ExotelClient
from reconciler.exotel.records import ListedTrunk, LiveTrunk
from reconciler.live import ledger as ledgers
from reconciler.live.state import TrunkEntry, fingerprint
from reconciler.manifests import canonical
from reconciler.manifests.load import Manifests
from reconciler.manifests.models import TrunkSpec
from reconciler.pipeline.accounts import Options, choose, client_for
from reconciler.plan.diff import parts
from reconciler.plan.kinds import KINDS

SCHEMA_LINE = "# yaml-language-server: $schema={path}\n"


@dataclass(frozen=True)
class Imported:
    name: str
    sid: str
    file: Path
    passwords: tuple[str, ...]  # environment variables to set before the next apply
    recorded_only: bool = False  # declared already: only the ledger learnt its SID


def password_variable(trunk: str, username: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", f"SIP_PASSWORD_{trunk}_{username}".upper())


def manifest_for(
    account: str,
    account_sid: str,
    name: str,
    trunk: LiveTrunk,
    variables: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The canonical manifest of a live trunk: defaults left out, shorthands used;
    ``variables`` names each credential's password variable (username -> NAME)."""
    document: dict[str, Any] = {"name": name, "account": account}
    if trunk.domain_name and trunk.domain_name != canonical.default_domain_name(account_sid):
        document["domain_name"] = trunk.domain_name
    passwords = {
        username: (variables or {}).get(username) or password_variable(name, username)
        for username in trunk.credentials
    }
    for kind in KINDS:
        value = kind.written(trunk, passwords)
        if value:
            document[kind.manifest_field] = value
    return document


def _parse_targets(targets: Sequence[str], *, full: bool) -> list[tuple[str, str | None]]:
    parsed = []
    for target in targets:
        sid, _, name = target.partition("=")
        if not full and not name:
            raise ConfigError(
                f"profile minimal cannot read trunk names: write --trunk-sid {sid}=NAME"
            )
        if name:
            canonical.trunk_name(name)
        parsed.append((sid, name or None))
    return parsed


async def import_trunks(
    manifests: Manifests,
    *,
    account: str,
    targets: Sequence[str],
    everything: bool,
    folder: Path,
    environ: Mapping[str, str],
    options: Options,
    force: bool,
) -> list[Imported]:
    [resolved] = choose(manifests, [account], environ, passwords=False)
    path = resolved.ledger_path
    with ledgers.Lock.beside(path):
        client = client_for(resolved, options)
        async with client.http:
            return await _import(
                manifests,
                client,
                account=account,
                targets=targets,
                everything=everything,
                folder=folder,
                ledger_file=path,
                force=force,
            )


async def _import(
    manifests: Manifests,
    client: ExotelClient,
    *,
    account: str,
    targets: Sequence[str],
    everything: bool,
    folder: Path,
    ledger_file: Path,
    force: bool,
) -> list[Imported]:
    spec = manifests.accounts[account].spec
    full = spec.api == "full"
    if everything and not full:
        raise ConfigError(
            "--all needs the trunk list, which profile minimal lacks: use --trunk-sid"
        )
    ledger = ledgers.read(ledger_file, account=account, account_sid=spec.sid)
    listed: dict[str, ListedTrunk] = {}
    if full:
        listed = {trunk.sid: trunk for trunk in await client.list_trunks()}
    wanted = _parse_targets(targets, full=full)
    if everything:
        owned = set(ledger.by_sid())
        wanted += [(sid, None) for sid in listed if sid not in owned and sid not in dict(wanted)]
    declared_in = {
        t.spec.name: Path(t.origin.file).resolve()
        for t in manifests.trunks
        if t.spec.account == account
    }
    # First read and check everything, then write: a refusal leaves no file behind.
    ready: list[tuple[Imported, str, TrunkEntry]] = []
    variables: set[str] = set()
    for sid, given in wanted:
        if full and sid not in listed:
            raise ConfigError(f"account {account} has no trunk {sid}")
        try:
            trunk = await client.read_trunk(sid, listed.get(sid), settings=full)
        except NotFound:
            raise ConfigError(f"account {account} has no trunk {sid}") from None
        name = given or str(trunk.name)
        if name in declared_in and name not in ledger.trunks and sid not in ledger.by_sid():
            # Declared already: record which live trunk it is, write no manifest.
            recorded = Imported(name, sid, declared_in[name], (), recorded_only=True)
            ready.append((recorded, "", TrunkEntry(sid)))
            continue
        file = folder / f"{name}.yaml"
        _check_target(name, sid, file, declared_in, ledger, force=force)
        if any(item.file == file for item, _, _ in ready):
            raise ConfigError(f"two trunks would be written to {file}: import them one by one")
        names = _variables(name, sorted(trunk.credentials), variables)
        content, entry = _written(account, spec.sid, name, trunk, variables=names, folder=folder)
        passwords = tuple(names[user] for user in sorted(trunk.credentials))
        ready.append((Imported(name, sid, file, passwords), content, entry))
    for item, content, entry in ready:
        if not item.recorded_only:
            item.file.parent.mkdir(parents=True, exist_ok=True)
            item.file.write_text(content, encoding="utf-8")
        ledger = ledger.with_trunk(item.name, entry)
    if ready:
        ledgers.write(ledger_file, ledger)
    return [item for item, _, _ in ready]


def _written(
    account: str,
    account_sid: str,
    name: str,
    trunk: LiveTrunk,
    *,
    variables: dict[str, str],
    folder: Path,
) -> tuple[str, TrunkEntry]:
    """The manifest file's text for one live trunk, and its ledger entry; refuses a trunk
    whose values the manifests cannot express."""
    document = manifest_for(account, account_sid, name, trunk, variables)
    domain = trunk.domain_name or canonical.default_domain_name(account_sid)
    try:
        model = TrunkSpec.model_validate({**document, "domain_name": domain})
    except ValidationError as error:
        details = "; ".join(e["msg"] for e in error.errors(include_url=False))
        raise ConfigError(
            f"trunk {name} ({trunk.sid}) holds values the manifests cannot express: "
            f"{details}; fix them in the dashboard, then import again"
        ) from None
    schema = _schema_path(folder)
    text = yaml.safe_dump({"trunks": [document]}, sort_keys=False, allow_unicode=True)
    entry = TrunkEntry(
        trunk.sid,
        alias=trunk.alias,
        credentials={},
        fingerprint=fingerprint(model),
        parts=parts(model),
    )
    return (SCHEMA_LINE.format(path=schema) if schema else "") + text, entry


def _check_target(
    name: str,
    sid: str,
    file: Path,
    declared_in: dict[str, Path],
    ledger: ledgers.Ledger,
    *,
    force: bool,
) -> None:
    """Refuse what would lose or duplicate work; ``--force`` only rewrites a file that
    holds this one trunk and nothing else."""
    if not force:
        if name in declared_in:
            raise ConfigError(f"trunk {name} is already declared: --force to write it again")
        if name in ledger.trunks or sid in ledger.by_sid():
            raise ConfigError(f"trunk {name} ({sid}) is already in the ledger")
        if file.exists():
            raise ConfigError(f"{file} exists: --force to overwrite it")
        return
    if name in declared_in and declared_in[name] != file.resolve():
        raise ConfigError(
            f"trunk {name} is declared in {declared_in[name]}, not {file}: remove it there "
            "first, or edit it by hand"
        )
    if file.exists() and not _holds_only(file, name):
        raise ConfigError(
            f"{file} holds more than trunk {name}: not overwritten, even with --force"
        )


def _holds_only(file: Path, name: str) -> bool:
    try:
        documents = list(yaml.safe_load_all(file.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return False
    documents = [d for d in documents if d is not None]
    if len(documents) != 1 or not isinstance(documents[0], dict):
        return False
    trunks = documents[0].get("trunks")
    return (
        set(documents[0]) == {"trunks"}
        and isinstance(trunks, list)
        and len(trunks) == 1
        and isinstance(trunks[0], dict)
        and trunks[0].get("name") == name
    )


def _variables(trunk: str, usernames: Sequence[str], used: set[str]) -> dict[str, str]:
    """Password variables, unique across this import: trunk x_b with user c and trunk x
    with user b_c would otherwise share SIP_PASSWORD_X_B_C."""
    names = {}
    for username in usernames:
        base = password_variable(trunk, username)
        candidate, n = base, 2
        while candidate in used:
            candidate, n = f"{base}_{n}", n + 1
        used.add(candidate)
        names[username] = candidate
    return names


def _schema_path(folder: Path) -> str | None:
    """The committed schema, relative to where the manifest goes, when there is one."""
    here = folder.resolve()
    for parent in [here, *here.parents]:
        if (parent / "schema" / "manifest.schema.json").exists():
            up = [".."] * len(here.relative_to(parent).parts)
            return str(Path(*up, "schema", "manifest.schema.json"))
    return None
