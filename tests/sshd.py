"""OpenSSH's sshd on loopback, standing in for GitHub's SSH git endpoint: it admits only
the keys it is given (a deploy key) and serves git over SSH from the bare repositories on
disk. Debian's openssh-server provides it; tests skip (or fail, under
RECONCILER_REQUIRE_TOOLS) without it."""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

SSHD = shutil.which("sshd") or ("/usr/sbin/sshd" if Path("/usr/sbin/sshd").exists() else None)


def needs_sshd() -> None:
    if SSHD is None:
        if os.environ.get("RECONCILER_REQUIRE_TOOLS"):
            pytest.fail("sshd is required (Debian's openssh-server) and was not found")
        pytest.skip("sshd not installed (Debian's openssh-server): the SSH push is not tested")


def keypair(folder: Path, name: str) -> tuple[Path, str]:
    """A new ed25519 key without a passphrase: its private file and its public line."""
    path = folder / name
    subprocess.run(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", str(path)], check=True
    )
    return path, path.with_suffix(".pub").read_text().strip()


@dataclass(frozen=True)
class Server:
    port: int
    host_key: str  # the public line, as GitHub's /meta lists its own
    user: str

    def url(self, repository: Path) -> str:
        return f"ssh://{self.user}@127.0.0.1:{self.port}{repository}"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def serving(folder: Path, authorized: list[str]) -> Iterator[Server]:
    """sshd on a free loopback port that lets in only ``authorized`` public keys."""
    assert SSHD is not None
    folder.mkdir(parents=True, exist_ok=True)
    host_key, host_public = keypair(folder, "host_key")
    keys = folder / "authorized_keys"
    keys.write_text("".join(f"{line}\n" for line in authorized))
    keys.chmod(0o600)
    port = _free_port()
    config = folder / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\n"
        f"AuthorizedKeysFile {keys}\nPidFile {folder / 'sshd.pid'}\n"
        "StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n"
        "PubkeyAuthentication yes\nPermitRootLogin prohibit-password\n"
        f"SetEnv PATH={os.environ.get('PATH', '/usr/bin:/bin')}\n"
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege separation
    log = folder / "sshd.log"
    process = subprocess.Popen(
        [SSHD, "-D", "-e", "-f", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"sshd exited: {log.read_text()}")
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        yield Server(port, host_public, getpass.getuser())
    finally:
        process.terminate()
        process.wait(5)
