"""Shared fixtures: the real sandbox, started once per session, reset before each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.cli import logs
from tests.sandboxes import Api, Sandbox, running

logs.configure()  # as the CLI does by default: warnings only, on stderr


@pytest.fixture(scope="session")
def sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """Profile full, no rate limit (tests of the limit start their own), fixed seed."""
    log = tmp_path_factory.mktemp("sandbox") / "full.log"
    with running("--rate-limit", "0", "--seed", "7", log_path=log) as started:
        yield started


@pytest.fixture(scope="session")
def minimal_sandbox(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    log = tmp_path_factory.mktemp("sandbox") / "minimal.log"
    with running("--profile", "minimal", "--rate-limit", "0", log_path=log) as started:
        yield started


@pytest.fixture
def api(sandbox: Sandbox) -> Api:
    sandbox.reset()
    return Api(sandbox.http)


@pytest.fixture
def minimal_api(minimal_sandbox: Sandbox) -> Api:
    minimal_sandbox.reset()
    return Api(minimal_sandbox.http)


@pytest.fixture
def log_path(tmp_path: Path) -> Path:
    return tmp_path / "sandbox.log"
