"""The loader on its own: positions, merges, secrets, and fuzzing for tracebacks."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reconciler.cli import main
from reconciler.manifests.load import load
from reconciler.manifests.problems import Severity
from reconciler.manifests.secrets import require_secrets
from reconciler.pipeline.accounts import Options, choose, client_for

ACCOUNT = """accounts:
  prod:
    sid: ameyo5m
    api_key: ${EXOTEL_API_KEY}
    api_token: ${EXOTEL_API_TOKEN}
"""
TRUNK = """trunks:
  - name: blr_bot
    account: prod
    credentials:
      - username: bot
        password: ${SIP_PASSWORD_BLR}
"""


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return folder


def test_example_manifests_load_with_defaults_filled_in() -> None:
    manifests = load(Path(__file__).parents[1] / "manifests")
    assert manifests.problems == ()
    assert manifests.accounts["demo"].spec.ledger == "state/demo.json"
    trunks = {trunk.spec.name: trunk.spec for trunk in manifests.trunks}
    assert set(trunks) == {"blr_voicebot", "mum_contact_ctr", "outbound_dialer"}
    assert trunks["outbound_dialer"].domain_name == "demo.pstn.exotel.com"
    assert trunks["mum_contact_ctr"].phone_numbers[0].mode == "pstn"


def test_ledger_defaults_to_the_account_name(tmp_path: Path) -> None:
    manifests = load(write(tmp_path, {"a.yaml": ACCOUNT}))
    assert manifests.accounts["prod"].spec.ledger == "state/prod.json"


def test_a_ledger_path_must_stay_inside_the_manifests_folder(tmp_path: Path) -> None:
    for escape in ("../x.json", "state/../../x.json", "state\\..\\..\\x.json"):
        account = ACCOUNT + f"    ledger: '{escape}'\n"
        manifests = load(write(tmp_path / str(len(escape)), {"a.yaml": account}))
        [problem] = manifests.errors
        assert problem.path == "accounts.prod.ledger"
        assert "must stay inside the manifests directory" in problem.message


def test_hidden_folders_and_other_files_are_skipped(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a.yaml": ACCOUNT,
            ".git/config.yaml": "not: [valid",
            "state/prod.json": "{}",
            "notes.txt": "trunks: oops",
        },
    )
    manifests = load(tmp_path)
    assert manifests.problems == ()
    assert manifests.files == (str(tmp_path / "a.yaml"),)
    assert {(item.path, item.reason) for item in manifests.skipped} == {
        (f"{tmp_path / '.git'}/", "hidden folder"),
        (str(tmp_path / "state/prod.json"), "ledger"),
        (str(tmp_path / "notes.txt"), "not .yaml or .yml"),
    }


def test_manifests_in_upper_case_files_are_read_and_skips_are_named(
    tmp_path: Path, capsys: Any
) -> None:
    """A trunk in trunks.YAML is declared like any other: skipping it would let prune
    delete it. What is not read is said, file by file."""
    trunk = TRUNK.replace("blr_bot", "loud_bot").replace("SIP_PASSWORD_BLR", "SIP_PASSWORD_L")
    write(
        tmp_path,
        {
            "accounts.Yml": ACCOUNT,
            "trunks.YAML": TRUNK,
            "more/loud.yAmL": trunk,
            ".drafts/old.yaml": TRUNK,
            "README.md": "# manifests",
        },
    )
    manifests = load(tmp_path)
    assert manifests.errors == ()
    assert sorted(t.spec.name for t in manifests.trunks) == ["blr_bot", "loud_bot"]
    assert len(manifests.files) == 3
    assert main(["validate", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert f"{tmp_path / '.drafts'}/: skipped: hidden folder" in out
    assert f"{tmp_path / 'README.md'}: skipped: not .yaml or .yml" in out
    assert "3 files, 1 account, 2 trunks (2 files skipped): valid" in out


def test_a_model_with_broken_items_is_still_checked_across_trunks(tmp_path: Path) -> None:
    text = (
        ACCOUNT
        + """trunks:
  - name: t1
    account: prod
    phone_numbers: ["+918040264208", "not a number", "+918040264209"]
    destination_uris: [44.248.146.11:5061;transport=tls]
  - name: t2
    account: prod
    phone_numbers: ["+918040264209"]
"""
    )
    problems = load(write(tmp_path, {"a.yaml": text})).problems
    assert [(p.line, p.path) for p in problems] == [
        (9, "trunks[0].phone_numbers[1].number"),
        (10, "trunks[0].destination_uris[0]"),
        (13, "trunks[1].phone_numbers[0]"),
    ]


def test_require_secrets_names_what_is_missing(tmp_path: Path) -> None:
    manifests = load(write(tmp_path, {"a.yaml": ACCOUNT + TRUNK}))
    environ = {"EXOTEL_API_KEY": "key", "SIP_PASSWORD_BLR": "bad password!"}
    secrets, problems = require_secrets(manifests, environ)
    assert [(p.path, p.message) for p in problems] == [
        (
            "accounts.prod.api_token",
            "environment variable EXOTEL_API_TOKEN is not set (set it, or give a line "
            "EXOTEL_API_TOKEN=... in RECONCILER_SECRETS)",
        ),
        (
            "trunks[0].credentials[0].password",
            "the password in SIP_PASSWORD_BLR must be 1 to 64 letters, digits or underscores "
            "(Exotel refuses anything else); generate one that is",
        ),
    ]
    assert all("bad password!" not in p.text() for p in problems)
    assert secrets.get("${EXOTEL_API_KEY}") == "key"
    assert "key" not in repr(secrets)


def test_require_secrets_for_chosen_accounts_only(tmp_path: Path) -> None:
    manifests = load(write(tmp_path, {"a.yaml": ACCOUNT + TRUNK}))
    environ = {"EXOTEL_API_KEY": "k", "EXOTEL_API_TOKEN": "t", "SIP_PASSWORD_BLR": "pw_1"}
    secrets, problems = require_secrets(manifests, environ)
    assert problems == []
    assert secrets.get("${SIP_PASSWORD_BLR}") == "pw_1"
    _, problems = require_secrets(manifests, {}, accounts=[])
    assert problems == []


def test_a_variable_set_but_empty_is_told_apart_from_one_not_set(tmp_path: Path) -> None:
    manifests = load(write(tmp_path, {"a.yaml": ACCOUNT + TRUNK}))
    environ = {"EXOTEL_API_KEY": "", "EXOTEL_API_TOKEN": "t"}
    _, problems = require_secrets(manifests, environ)
    said = {p.message.split(" (")[0] for p in problems}
    assert said == {
        "environment variable EXOTEL_API_KEY is set but empty",
        "environment variable SIP_PASSWORD_BLR is not set",
    }


def test_merge_keys_and_positions_inside_merges(tmp_path: Path) -> None:
    text = (
        ACCOUNT
        + """x-base: &base
  account: prod
  whitelisted_ips: [10.0.0.1]
trunks:
  - <<: *base
    name: t1
"""
    )
    [problem] = load(write(tmp_path, {"a.yaml": text})).problems
    assert (problem.line, problem.path) == (8, "trunks[0].whitelisted_ips[0]")
    assert "private address" in problem.message


def test_warnings_do_not_make_it_invalid(tmp_path: Path) -> None:
    text = ACCOUNT + 'trunks:\n  - name: t1\n    account: prod\n    alias: "+918040264208"\n'
    manifests = load(write(tmp_path, {"a.yaml": text}))
    assert [p.severity for p in manifests.problems] == [Severity.WARNING]
    assert manifests.errors == ()


FUZZ = settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KEYS = [
    "accounts",
    "trunks",
    "prod",
    "sid",
    "region",
    "api_key",
    "api_token",
    "api",
    "prune",
    "ledger",
    "base_url",
    "name",
    "account",
    "renamed_from",
    "protect",
    "allow_replace",
    "nso_code",
    "domain_name",
    "phone_numbers",
    "number",
    "mode",
    "whitelisted_ips",
    "destination_uris",
    "uri",
    "priority",
    "weight",
    "alias",
    "credentials",
    "username",
    "password",
    "password_version",
    "friendly_name",
    "x-anchor",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=30),
    st.sampled_from(
        [
            "prod",
            "${K}",
            "+918040264208",
            "44.248.146.11",
            "mumbai",
            "flow",
            "sip.company.com:5061;transport=tls",
            "13.126.40.0/24",
            "ANY-ANY",
        ]
    ),
)
TREES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.dictionaries(st.one_of(st.sampled_from(KEYS), st.text(max_size=8)), inner, max_size=5),
    ),
    max_leaves=25,
)


def run_validate(path: Path) -> int:
    return main(["validate", str(path)])


@FUZZ
@given(text=st.text(max_size=300))
def test_any_text_gets_messages_never_a_traceback(tmp_path_factory: Any, text: str) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "m.yaml").write_text(text, encoding="utf-8")
    manifests = load(folder)
    assert all(p.message and p.file == str(folder / "m.yaml") for p in manifests.problems)
    assert run_validate(folder) == (1 if manifests.errors else 0)


@FUZZ
@given(tree=TREES)
def test_any_yaml_structure_gets_messages_never_a_traceback(
    tmp_path_factory: Any, tree: Any
) -> None:
    folder = tmp_path_factory.mktemp("fuzz")
    (folder / "m.yaml").write_text(yaml.safe_dump({"trunks": [tree], "accounts": {"prod": tree}}))
    manifests = load(folder)
    # Every problem in a readable file points at a line of it.
    assert all(p.line >= 1 and p.column >= 1 and p.message for p in manifests.problems)
    assert run_validate(folder) == (1 if manifests.errors else 0)


def test_an_accounts_rate_limit_is_its_clients_unless_the_command_says(tmp_path: Path) -> None:
    manifests = load(write(tmp_path, {"a.yaml": ACCOUNT + "    rate_limit: 30\n"}))
    environ = {"EXOTEL_API_KEY": "key3141", "EXOTEL_API_TOKEN": "token2718"}
    [account] = choose(manifests, [], environ)
    assert client_for(account, Options()).gate.per_minute == 30
    assert client_for(account, Options(per_minute=5)).gate.per_minute == 5
    said = repr(account)  # a resolved account never prints its secrets
    assert "key3141" not in said
    assert "token2718" not in said
    default = load(write(tmp_path / "b", {"a.yaml": ACCOUNT}))
    [plain] = default.accounts.values()
    assert plain.spec.rate_limit == 200


def test_a_national_number_gets_the_right_fix_quoted_or_not(tmp_path: Path) -> None:
    for written in ("02067001001", '"02067001001"'):
        trunk = f"trunks:\n  - name: t\n    account: prod\n    phone_numbers: [{written}]\n"
        manifests = load(write(tmp_path / str(len(written)), {"a.yaml": ACCOUNT + trunk}))
        [problem] = manifests.errors
        assert '"+912067001001" (drop the trunk prefix 0)' in problem.message, problem.message


def test_a_did_on_two_trunks_points_at_both_lines(tmp_path: Path) -> None:
    trunks = (
        "trunks:\n"
        "  - name: a\n    account: prod\n    phone_numbers:\n"
        '      - "+918040264201"\n      - "+918040264202"\n'
        "  - name: b\n    account: prod\n    phone_numbers:\n"
        '      - "+918040264203"\n      - "+918040264202"\n'
    )
    manifests = load(write(tmp_path, {"a.yaml": ACCOUNT + trunks}))
    [problem] = manifests.errors
    assert problem.line == 16  # the duplicate's own line
    assert "is also declared on trunk 'a' (" in problem.message
    assert problem.message.split("(")[1].startswith(f"{tmp_path / 'a.yaml'}:11)")


def test_a_file_that_does_not_parse_causes_no_cascade(tmp_path: Path) -> None:
    """Its accounts are unknown, so references to them are not reported as undeclared."""
    broken = ACCOUNT.replace("    sid: ameyo5m\n", "    sid: [ameyo5m\n")  # unclosed list
    manifests = load(write(tmp_path, {"a.yaml": broken, "t.yaml": TRUNK}))
    [problem] = manifests.errors
    assert problem.file.endswith("a.yaml")
    assert problem.message.startswith("YAML syntax")
    fixed = load(write(tmp_path, {"a.yaml": ACCOUNT.replace("prod:", "other:")}))
    assert any("unknown account 'prod'" in p.message for p in fixed.errors)  # checked again


def test_custom_params_and_agents_tell_every_problem_at_once(tmp_path: Path) -> None:
    account = ACCOUNT.replace("prod:", "demo:").replace("ameyo5m", "demo")
    routes = """trunks:
  - name: bot
    account: demo
    phone_numbers: [{number: "+918040264208", mode: flow}]
routes:
  - did: "+918040264208"
    account: demo
    default:
      trunk: bot
      custom_params: {X-Port: 5060, X-A: a, X-B: b, Exotel-Id: c}
    handoff:
      agents: {available: true, url: "ftp://x"}
"""
    manifests = load(write(tmp_path, {"a.yaml": account, "r.yaml": routes}))
    said = "\n".join(p.message for p in manifests.errors)
    assert "the value of X-Port was read as a number or true/false: quote it" in said
    assert "at most 3 custom SIP headers per call" in said  # not hidden by the number
    assert "header name 'Exotel-Id' is reserved" in said
    assert "give agents either available: true|false or url" in said
    assert "url: " in said.split("give agents either", 1)[1]  # and what is wrong with it


def test_a_did_declared_in_two_accounts_is_warned_and_routing_it_twice_refused(
    tmp_path: Path,
) -> None:
    """A number belongs to one Exotel account. Declared in two, trace and serve would
    answer for whichever they met first: say so, and refuse two routes for it."""
    second = ACCOUNT.replace("accounts:\n  prod:", "  other:").replace("ameyo5m", "other5m")
    trunks = "trunks:\n" + "".join(
        f"  - name: {name}\n    account: {account}\n"
        f"    phone_numbers: [{{number: '+918040264208', mode: flow}}]\n"
        for name, account in (("bot", "prod"), ("twin", "other"))
    )
    write(tmp_path, {"accounts.yaml": ACCOUNT + second, "trunks.yaml": trunks})
    manifests = load(tmp_path)
    [warning] = manifests.warnings
    assert "DID +918040264208 is also declared in account prod (trunk 'bot'" in warning.message
    assert manifests.errors == ()
    routes = "routes:\n" + "".join(
        f"  - did: '+918040264208'\n    account: {account}\n    default: {{trunk: {trunk}}}\n"
        for account, trunk in (("prod", "bot"), ("other", "twin"))
    )
    write(tmp_path, {"routes.yaml": routes})
    [error] = load(tmp_path).errors
    assert "+918040264208 is routed in account prod too" in error.message
    assert error.file.endswith("routes.yaml")


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        ('destination_uris: [{uri: "sbc.example.com:5061;transport=tls", priority: "1"}]',
         'priority must be a whole number, and "1" is quoted text: write it without quotes'),
        ("destination_uris: ['[2001:db8::1]:5061;transport=tls']",
         "Exotel trunks take IPv4 addresses and host names, not IPv6"),
        ("destination_uris: ['2001:db8::1;transport=tls']", "not IPv6"),
        ("destination_uris: ['sbc.example.com.:5061;transport=tls']",
         "drop the trailing dot of the host name: sbc.example.com"),
        ("destination_uris: ['sips:sbc.example.com:5061']",
         "write sip:, not sips: (TLS is chosen with ;transport=tls"),
        ("phone_numbers: [{number: '+918040264208', mode: FLOW}]", "did you mean 'flow'?"),
        ("credentials: [{username: bot, password: '${SIP_PASSWORD:-x}'}]",
         "a reference is ${NAME} only"),
        ("credentials: [{username: bot, password: '${sip-pw}'}]", "a reference is ${NAME} only"),
    ],
)  # fmt: skip
def test_a_mistake_gets_a_message_that_says_what_would_be_right(
    tmp_path: Path, field: str, expected: str
) -> None:
    trunk = f"trunks:\n  - name: bot\n    account: prod\n    {field}\n"
    manifests = load(write(tmp_path, {"a.yaml": ACCOUNT + trunk}))
    messages = [problem.message for problem in manifests.errors]
    assert any(expected in message for message in messages), messages
    assert not any("neither an IPv4 address" in message for message in messages)
    assert not any("never in the manifest" in message for message in messages)


def test_zero_weights_at_one_priority_and_short_indian_numbers(tmp_path: Path) -> None:
    trunk = (
        "trunks:\n  - name: bot\n    account: prod\n"
        "    phone_numbers: ['+91804026420', '+9118001234567', '+14155550100']\n"
        "    destination_uris:\n"
        "      - {uri: a.example.com:5061;transport=tls, priority: 1, weight: 0}\n"
        "      - {uri: b.example.com:5061;transport=tls, priority: 1, weight: 0}\n"
        "      - {uri: c.example.com:5061;transport=tls, priority: 2, weight: 0}\n"
    )
    manifests = load(write(tmp_path, {"a.yaml": ACCOUNT + trunk}))
    [short] = manifests.errors
    assert "+91804026420 has 9 digits after +91; an Indian number has 10" in short.message
    [weights] = manifests.warnings
    assert "every destination at priority 1 has weight 0" in weights.message
    from reconciler.pipeline.checking import destinations  # noqa: PLC0415

    fixed = trunk.replace("'+91804026420', ", "")
    spec = load(write(tmp_path, {"a.yaml": ACCOUNT + fixed})).trunks[0].spec
    assert [round(d.share, 2) for d in destinations("prod", spec)] == [0.5, 0.5, 1.0]


def test_every_yaml_example_in_the_docs_parses() -> None:
    """A reader copies them: each ```yaml block of README.md and docs/ is YAML."""
    root = Path(__file__).parents[1]
    pages = [root / "README.md", *sorted((root / "docs").rglob("*.md"))]
    blocks = [
        (page, block)
        for page in pages
        for block in re.findall(r"```yaml\n(.*?)```", page.read_text(), re.S)
    ]
    assert len(blocks) > 10
    for page, block in blocks:
        try:
            yaml.safe_load(block)
        except yaml.YAMLError as error:
            pytest.fail(f"{page.relative_to(root)}: {error}")
