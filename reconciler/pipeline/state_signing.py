"""Who may write the state branch: commits signed with the state key, checked on every read.

Anyone who can push a branch can push ``reconciler-state`` too, unless a ruleset stops
them; a forged ``.applied`` marker would make apply skip a merge, a forged ledger would
make it delete trunks it does not own. So every commit this tool makes on the branch is
signed with an SSH key (``RECONCILER_STATE_KEY``, held by an environment only ``main``'s
workflows reach), and every read checks the branch's tip against the public keys listed
in the signers file on ``main`` (``.github/reconciler-state.signers``, in git's
allowed-signers format: ``reconciler-state ssh-ed25519 AAAA...``).

Checking the tip is enough because a push never builds on a tip that does not verify:
each signed commit vouches for its parent, back to the first one. A tip moved back to an
older signed commit is stopped by the ruleset that blocks force pushes (docs/gitops.md,
"The state branch").

The same key, added to the repository as a deploy key with write access, is the identity
the ruleset lets update the branch: ``push`` uses it for SSH remotes
(``ssh://git@github.com/OWNER/REPO.git``) with the host keys GitHub publishes, never the
keys of whatever answers.
"""

from __future__ import annotations

import base64
import contextlib
import os
import shlex
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from reconciler.errors import ConfigError, LedgerError

SIGNERS = Path(".github") / "reconciler-state.signers"
KEY_VARIABLE = "RECONCILER_STATE_KEY"
_KEY_TYPES = ("ssh-", "ecdsa-sha2-", "sk-ssh-", "sk-ecdsa-")
# What git's %G? says of a signature (git-log(1), "Placeholders"), for the refusal.
_VERDICTS = {
    "B": "its signature is bad (the commit was altered after signing)",
    "U": "it is signed by a key that is not in the signers file",
    "X": "its signature has expired",
    "Y": "it is signed by an expired key",
    "R": "it is signed by a revoked key",
    "E": "its signature cannot be checked",
    "N": "it is not signed",
}


class GitRunner(Protocol):
    """What ``verified`` needs of a git: ``run(*args, extra=...)``."""

    def __call__(
        self, *args: str, extra: Mapping[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]: ...


@dataclass(frozen=True)
class Trust:
    """How the state branch is checked: the signers file (None: not checked) and the
    private key that signs (None: not set)."""

    signers: Path | None
    key: str | None

    @property
    def checked(self) -> bool:
        return self.signers is not None


def settle(root: Path, environ: Mapping[str, str], *, signers: str | None, require: bool) -> Trust:
    """The trust of a repository whose work tree is ``root``: the signers file named, or
    ``.github/reconciler-state.signers`` when it exists. ``require``: its absence is an
    error (the apply workflow's reads)."""
    named = Path(signers) if signers else root / SIGNERS
    if signers and not named.is_file():
        raise ConfigError(f"--signers {signers}: no such file")
    if require and not named.is_file():
        raise ConfigError(
            f"the state branch must be signed here, and {SIGNERS} is missing on this "
            'commit: create the state key and list it there (docs/gitops.md, "The state '
            'branch")'
        )
    path = named if named.is_file() else None
    if path is not None:
        check_signers(path)
    key = environ.get(KEY_VARIABLE)
    if key is not None and not key.strip():
        raise ConfigError(f"{KEY_VARIABLE} is set but empty: set it to the state key")
    return Trust(path, key)


def check_signers(path: Path) -> list[str]:
    """The ``type base64`` of each key listed; a line git could not read is an error that
    names it (a file that silently trusts nothing would refuse every read)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise ConfigError(f"cannot read {path}: {error}") from None
    keys = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        found = next((i for i, f in enumerate(fields) if f.startswith(_KEY_TYPES)), None)
        if found is None or found == 0 or found + 1 >= len(fields):
            raise ConfigError(
                f"{path}:{number}: expected 'PRINCIPALS KEYTYPE KEY', as in "
                "'reconciler-state ssh-ed25519 AAAA...' (git's allowed signers format)"
            )
        kind, blob = fields[found], fields[found + 1]
        if _blob_kind(blob) != kind:
            raise ConfigError(
                f"{path}:{number}: {kind} {blob[:16]}... is not a {kind} public key (a typo? "
                "copy the first two fields of the .pub file)"
            )
        keys.append(f"{kind} {blob}")
    if not keys:
        raise ConfigError(f"{path}: lists no key, so no commit could ever be trusted")
    return keys


def _blob_kind(blob: str) -> str | None:
    """The key type an SSH public key's base64 blob names in its first field (RFC 4253,
    6.6: a length-prefixed string), or None when it is not one."""
    try:
        raw = base64.b64decode(blob, validate=True)
    except ValueError:
        return None
    size = int.from_bytes(raw[:4], "big")
    if len(raw) < 4 + size or size > 64:
        return None
    return raw[4 : 4 + size].decode("ascii", "replace")


def config(environ: Mapping[str, str], pairs: Mapping[str, str]) -> dict[str, str]:
    """``pairs`` as ``GIT_CONFIG_*`` variables, after any the environment already has."""
    count = int(environ.get("GIT_CONFIG_COUNT", "0") or 0)
    added = {"GIT_CONFIG_COUNT": str(count + len(pairs))}
    for offset, (key, value) in enumerate(pairs.items()):
        added[f"GIT_CONFIG_KEY_{count + offset}"] = key
        added[f"GIT_CONFIG_VALUE_{count + offset}"] = value
    return added


def verified(run: GitRunner, commit: str, trust: Trust, where: str) -> None:
    """Refuse ``commit`` unless it carries a good signature by a listed key."""
    if trust.signers is None:
        return
    environ = config({}, {"gpg.ssh.allowedSignersFile": str(trust.signers.resolve())})
    shown = run("log", "-1", "--format=%G?%x1f%GK", commit, extra=environ).stdout.strip()
    verdict, _, key = shown.partition("\x1f")
    if verdict == "G":
        return
    said = _VERDICTS.get(verdict, f"git says {verdict!r} of its signature")
    hint = {
        "U": f"If that is the state key, {trust.signers} has it wrong: compare with "
        "ssh-keygen -lf state-key.pub. Otherwise someone else wrote the branch: put it "
        "back to the last commit the state key signed",
        "N": "A branch made before signing was turned on: check its ledgers, then vouch "
        "for it once (reconciler state sign). Otherwise someone else wrote the branch: "
        "put it back to the last commit the state key signed",
    }.get(verdict, "Put the branch back to the last commit the state key signed")
    raise LedgerError(
        f"{where} is at {commit[:12]}, and {said}"
        + (f" ({key})" if key else "")
        + f": its ledgers and markers are not trusted ({trust.signers} lists who may "
        f'write it). {hint}; see docs/gitops.md, "The state branch"'
    )


@contextlib.contextmanager
def signing(
    trust: Trust, known_hosts: Path | None, environ: Mapping[str, str]
) -> Iterator[dict[str, str]]:
    """The environment that makes git sign commits with the state key and push with it
    over SSH, checking the server against ``known_hosts`` only. Empty without a key. The
    key lives in a private temporary file for the length of the block."""
    if trust.key is None:
        if trust.signers is not None:
            raise ConfigError(
                f"the state branch is signed ({trust.signers}): set {KEY_VARIABLE} to the "
                "state key to write it"
            )
        yield {}
        return
    with tempfile.TemporaryDirectory(prefix="reconciler-key-") as folder:
        path = Path(folder) / "state-key"
        text = trust.key.replace("\r\n", "\n").strip() + "\n"
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
        public = _public_key(path)
        if trust.signers is not None and public not in check_signers(trust.signers):
            raise ConfigError(
                f"{KEY_VARIABLE} is not listed in {trust.signers}: its commits would be "
                f"refused by every read. Add its public key ({public[:40]}...) there"
            )
        ssh = ["ssh", "-i", str(path), "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none"]
        ssh += ["-o", "BatchMode=yes", "-F", "/dev/null"]
        if known_hosts is not None:
            ssh += ["-o", f"UserKnownHostsFile={known_hosts.resolve()}"]
            ssh += ["-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes"]
        pairs = {"gpg.format": "ssh", "user.signingkey": str(path)}
        # After the configuration git already has (the token's header for HTTPS remotes).
        yield {"GIT_SSH_COMMAND": shlex.join(ssh), **config(environ, pairs)}


def _public_key(path: Path) -> str:
    command = ["ssh-keygen", "-y", "-P", "", "-f", str(path)]  # as git runs it for signing
    derived = subprocess.run(  # noqa: S603 (arguments we build)
        command,
        capture_output=True,
        text=True,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if derived.returncode != 0:
        raise ConfigError(f"{KEY_VARIABLE} {_what_is_wrong(path.read_text(encoding='utf-8'))}")
    fields = derived.stdout.split()
    return f"{fields[0]} {fields[1]}"


def _what_is_wrong(text: str) -> str:
    """Why a value is not a usable private key, in words that do not repeat it."""
    stripped = text.strip()
    if stripped.startswith(_KEY_TYPES):
        return "holds a public key: set it to the private key (the file without .pub)"
    if "\\n" in stripped and "\n" not in stripped:
        return "holds a literal \\n: set it to the key file's contents, with real newlines"
    if not stripped.startswith("-----BEGIN"):
        return (
            "is not a private key: set it to the key file's contents (-----BEGIN OPENSSH "
            "PRIVATE KEY-----...), not its path"
        )
    return (
        "holds a key that has a passphrase or cannot be read: the state key must have none "
        "(ssh-keygen -t ed25519 -N '' -C reconciler-state -f state-key)"
    )


def known_hosts_lines(host: str, port: int | None, keys: list[str]) -> str:
    """A known_hosts file for ``host`` (and ``port`` when not 22) from the server's host
    keys, as GitHub publishes them (``GET /meta``, ``ssh_keys``)."""
    name = f"[{host}]:{port}" if port and port != 22 else host
    return "".join(f"{name} {key.strip()}\n" for key in keys if key.strip())
