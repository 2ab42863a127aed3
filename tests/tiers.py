"""Two tiers of tests: the fast ones, which ``make check`` runs in well under a minute
beside lint, types and the import contracts, and the ``slow`` ones, which ``make test``
adds: anything that starts processes (the CLI as a subprocess, SIP servers, sshd,
Chromium, git remotes, the demo) or fuzzes for many seconds.

The list is here, in one place, rather than a mark in each file, so that what the fast
tier leaves out can be read at a glance. A module that mixes both keeps its fast tests
fast by naming its slow ones below.
"""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).parent
SLOW_MODULES = frozenset(
    {
        "test_apply_cli.py",
        "test_calls.py",
        "test_chaos.py",
        "test_check.py",
        "test_ci.py",
        "test_cli.py",
        "test_client.py",
        "test_cost.py",
        "test_livekit_partner.py",
        "test_livekit_sandbox.py",
        "test_demo.py",
        "test_diagram.py",
        "test_disk_faults.py",
        "test_gitops.py",
        "test_newman.py",
        "test_plan_cli.py",
        "test_precommit.py",
        "test_render_partner_calls.py",
        "test_serve.py",
        "test_serve_cli.py",
        "test_signing.py",
        "test_sipservers.py",
        "test_state_branch.py",
        "test_state_signing.py",
        "test_trace.py",
        "test_trust.py",
        "test_workflows.py",
        "sandbox/test_control.py",
        "sandbox/test_limits.py",
        "sandbox/test_persistence.py",
        "sandbox/test_server.py",
    }
)
SLOW_TESTS = frozenset(
    {
        # hypothesis fuzzing of the loader and of renames: many seconds each
        "test_any_yaml_structure_gets_messages_never_a_traceback",
        "test_any_text_gets_messages_never_a_traceback",
        "test_a_failed_rename_is_never_reported_converged",
        # waits on purpose (a lock held by another apply, a held answer, a lost answer)
        "test_lock_timeout_waits_for_the_other_apply_then_goes_on",
        "test_a_trunk_create_with_a_lost_answer_is_found_by_name",
        "test_held_response_ends_after_hold_seconds",
        "test_seed_makes_sids_and_request_ids_reproducible",
        # test_check_partner.py: SIPp answering as LiveKit, and the CLI as a subprocess
        "test_livekits_answers_on_the_wire",
        "test_the_test_call_is_dressed_as_exotels_and_hung_up",
        "test_from_a_machine_exotels_addresses_exclude_a_404_is_inconclusive",
        "test_another_partners_answer_is_judged_as_before",
        "test_the_cli_explains_livekits_answer",
    }
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "slow: starts processes or fuzzes at length (make test runs it; make check not)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.path.relative_to(ROOT).as_posix()
        name = getattr(item, "originalname", item.name)
        if module in SLOW_MODULES or name in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
