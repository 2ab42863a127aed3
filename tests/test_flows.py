"""What the sandbox accepts from a Dynamic URL, by Exotel's rules (docs/exotel-api.md,
section 7): the answer's trunk, at most 3 custom headers in at most 200 bytes, none of
Exotel's or Veeno's reserved names; and the numbers and times it sends, as Exotel writes
them. Pure functions, so fast."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from reconciler.sandbox.voice import flows


def answered(answer: Any, status: int = 200) -> flows.Asked:
    return flows.Asked("dynamic_url", "http://h/connect", {}, status=status, answer=answer)


def test_a_good_answer_gives_the_trunk_its_headers_and_recording() -> None:
    asked = answered(
        {
            "destination": {"trunk": "trmum1abc"},
            "custom_params": "X-Tenant=acme&X-Queue=vip",
            "record": True,
            "recording_channels": "dual",
        }
    )
    chosen = flows.read_answer(asked)
    assert chosen == flows.Destination(
        "trmum1abc", (("X-Tenant", "acme"), ("X-Queue", "vip")), True, "dual"
    )
    assert asked.problems == []


def test_each_broken_rule_is_named() -> None:
    cases = {
        "answered 503, not 200": answered({"destination": {"trunk": "t"}}, status=503),
        "the answer is not a JSON object": answered("<html>"),
        "the answer has no destination.trunk": answered({"destination": {}}),
        "4 custom headers: at most 3": answered(
            {"destination": {"trunk": "t"}, "custom_params": "A=1&B=2&C=3&D=4"}
        ),
        "custom_params is 201 bytes: at most 200": answered(
            {"destination": {"trunk": "t"}, "custom_params": "X-A=" + "a" * 197}
        ),
        "header Exotel-Foo: Exotel- and Veeno- names are Exotel's": answered(
            {"destination": {"trunk": "t"}, "custom_params": "Exotel-Foo=1"}
        ),
    }
    for problem, asked in cases.items():
        assert flows.read_answer(asked) is None, problem
        assert problem in asked.problems, asked.problems
    exactly = answered({"destination": {"trunk": "t"}, "custom_params": "X-A=" + "a" * 196})
    assert flows.read_answer(exactly) is not None  # 200 bytes is allowed


def test_numbers_and_times_as_exotel_writes_them() -> None:
    assert flows.national("+918040264208") == "08040264208"
    assert flows.national("+14155550100") == "+14155550100"
    created = datetime(2026, 12, 2, 13, 30, tzinfo=UTC)
    query = flows.connect_query("sid1", "+919876543210", "+918040264208", created, 0.0)
    assert query["CallFrom"] == "09876543210"
    assert query["CallTo"] == "08040264208"
    assert query["Direction"] == "incoming"
    assert query["StartTime"] == "2026-12-02 19:00:00"  # Asia/Kolkata
    assert flows.shown_url("https://user:secret@routes.example.com/connect") == (
        "https://user:***@routes.example.com/connect"
    )


def test_a_header_cannot_smuggle_another_into_the_invite() -> None:
    smuggled = answered(
        {"destination": {"trunk": "t"}, "custom_params": "X-A=1%0D%0AX-Evil:%201&X B=2"}
    )
    assert flows.read_answer(smuggled) is None
    assert any("control characters" in problem for problem in smuggled.problems)
    assert any("is not a SIP token" in problem for problem in smuggled.problems)


def test_a_flow_url_must_have_a_host_and_a_port_that_exists() -> None:
    for url in ("http://u:secret@host:99999/x", "ftp://host/x", "http:///x"):
        with pytest.raises(flows.FlowError, match="with a host") as refused:
            flows.flow({"connect": {"url": url}})
        assert "secret" not in str(refused.value)
