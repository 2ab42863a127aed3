"""``reconciler render-partner``: golden files for Kamailio, FreeSWITCH and Asterisk, no
secret ever written, ``--check`` and its exit codes, which files are removed, and the
syntax each platform documents.

The estate is ``tests/golden/partners/manifests``; what it renders is
``tests/golden/partners/expected/<partner>/``, byte for byte. Set ``UPDATE_GOLDEN=1`` to
rewrite those files after a deliberate change, and read the diff before committing it.
Kamailio's files are also run by a real Kamailio (``tests/test_render_partner_calls.py``);
FreeSWITCH's and Asterisk's are checked here against the syntax their sources document
(Debian does not package either server here).
"""

from __future__ import annotations

import ipaddress
import os
import re
import shutil
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

from reconciler import partners
from reconciler.cli.main import main
from reconciler.manifests.load import load
from reconciler.manifests.seam import ends
from reconciler.partners import asterisk, freeswitch

GOLDEN = Path(__file__).parent / "golden" / "partners"
DOCS = Path(__file__).parent.parent / "docs"
MANIFESTS = GOLDEN / "manifests"
EXPECTED = GOLDEN / "expected"
# Distinctive values for every password variable the estate names: none may ever appear.
SECRETS = {
    "SIP_PASSWORD": "Canary_kam_4f1c",
    "FS_PASSWORD": "Canary_fs_9b2e",
    "AST_PASSWORD": "Canary_ast_7d3a",
    "AST_IVR_PASSWORD": "Canary_ivr_1e8f",
    "AST_IVR_OLD_PASSWORD": "Canary_old_5a6b",
    "LK_PASSWORD": "Canary_lk_2c9d",
}


@pytest.fixture(autouse=True)
def _not_on_github(monkeypatch: pytest.MonkeyPatch) -> None:
    """Runs in CI write no job summary of their own (one test asks for it)."""
    for name in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY", "GITHUB_OUTPUT"):
        monkeypatch.delenv(name, raising=False)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(["render-partner", *args])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def tree(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): path.read_text()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def rendered(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    output = tmp_path / "partner-config"
    code, _, err = run(capsys, str(MANIFESTS), "--output", str(output))
    assert code == 0, err
    return output


def test_the_estate_renders_the_golden_files(rendered: Path) -> None:
    got = tree(rendered)
    if os.environ.get("UPDATE_GOLDEN"):
        shutil.rmtree(EXPECTED, ignore_errors=True)
        shutil.copytree(rendered, EXPECTED)
    assert got == tree(EXPECTED)
    assert sorted(got) == [
        "blr_asterisk/exotel_secrets.conf.in",
        "blr_asterisk/pjsip_wizard_exotel.conf",
        "blr_freeswitch/exotel-acl.xml",
        "blr_freeswitch/sip_profiles/external/exotel.xml",
        "blr_kamailio/address.list",
        "blr_kamailio/dispatcher.list",
        "blr_kamailio/exotel.cfg",
        "blr_kamailio/tls.cfg",
    ]


def test_every_file_starts_with_the_header_naming_its_manifests(rendered: Path) -> None:
    for name, text in tree(rendered).items():
        first = text.splitlines()[0]
        assert partners.MARKER in first, name
        assert "accounts.yaml" in first
        assert "trunks.yaml" in first
        assert first.endswith(("; do not edit", "; do not edit -->")), name
        assert str(MANIFESTS) not in text  # relative to the manifests: the same from anywhere
    kamailio = (rendered / "blr_kamailio" / "exotel.cfg").read_text()
    assert "from accounts.yaml, routes.yaml, trunks.yaml;" in kamailio  # its headers' routes


def test_trunks_that_cannot_be_rendered_are_reported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, str(MANIFESTS), "--output", str(tmp_path / "out"))
    assert code == 0
    assert (
        "reconciler: not rendered: prod/lk_bot: partner blr_livekit is livekit, whose end plan "
        "and apply configure through LiveKit's API; render-partner writes the files of "
        "kamailio, freeswitch and asterisk partners"
    ) in err
    assert "reconciler: not rendered: prod/plain: partner: none\n" in err  # as it says
    assert "account mumbai lists no signalling addresses" in err  # the manifests' warning
    assert out.endswith("out: 3 partners (7 trunks): 8 files written, 0 unchanged\n")


def test_no_password_is_ever_written_only_the_variable_that_holds_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    output = tmp_path / "out"
    said = [run(capsys, str(MANIFESTS), "--output", str(output))]
    said.append(run(capsys, str(MANIFESTS), "--output", "-"))
    said.append(run(capsys, str(MANIFESTS), "--output", str(output), "--check"))
    everything = "".join(out + err for _, out, err in said) + "".join(tree(output).values())
    for value in SECRETS.values():
        assert value not in everything
    files = tree(output)
    assert "$avp(exotel_password) = $env(SIP_PASSWORD);" in files["blr_kamailio/exotel.cfg"]
    gateways = files["blr_freeswitch/sip_profiles/external/exotel.xml"]
    assert '<X-PRE-PROCESS cmd="env-set" data="exotel_password_fs_bot=$FS_PASSWORD"/>' in gateways
    assert '<param name="password" value="$${exotel_password_fs_bot}"/>' in gateways
    template = files["blr_asterisk/exotel_secrets.conf.in"]
    assert "outbound_auth/password = ${AST_PASSWORD}" in template
    assert "outbound_auth/password = ${AST_IVR_PASSWORD}" in template
    assert "AST_IVR_OLD_PASSWORD" not in template  # the credential not chosen
    assert "password" not in files["blr_asterisk/pjsip_wizard_exotel.conf"].replace(
        "passwords", ""
    ).replace("PASSWORD", "")
    # Every line that sets a password sets a reference, whatever the platform.
    setting = re.compile(r'password\) = |name="password" value=|password = ')
    reference = re.compile(r'= \$env\(\w+\);$|value="\$\$\{\w+\}"/>$|= \$\{\w+\}$')
    assigned = [
        (n, line) for n, t in files.items() for line in t.splitlines() if setting.search(line)
    ]
    assert len(assigned) == 4  # Kamailio's, FreeSWITCH's, and Asterisk's two
    for name, line in assigned:
        assert reference.search(line), (name, line)


def test_check_exits_2_on_any_difference_and_shows_it(
    rendered: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run(capsys, str(MANIFESTS), "--output", str(rendered), "--check")
    assert (code, out) == (0, f"{rendered}: up to date (8 files)\n")
    dispatcher = rendered / "blr_kamailio" / "dispatcher.list"
    dispatcher.write_text(dispatcher.read_text().replace("5070", "5060"))
    stale = rendered / "blr_kamailio" / "old.cfg"
    stale.write_text(f"# {partners.header(['old.yaml'])}\nroute[OLD] {{}}\n")
    own = rendered / "blr_kamailio" / "kamailio.cfg"  # the partner's own: no header
    own.write_text("# mine\n")
    (rendered / "blr_freeswitch" / "exotel-acl.xml").unlink()
    edited = dispatcher.read_text()
    code, out, _ = run(capsys, str(MANIFESTS), "--output", str(rendered), "--check")
    assert code == 2
    assert f"--- {dispatcher} (in the folder)\n+++ {dispatcher} (rendered)\n" in out
    assert "-3 sip:pstn.in2.exotel.com:5060;transport=tcp 0 0 duid=support\n" in out
    assert "+3 sip:pstn.in2.exotel.com:5070;transport=tcp 0 0 duid=support\n" in out
    assert f"{dispatcher}: differs (would be written)\n" in out
    assert f"{stale}: no longer rendered (would be removed)\n" in out
    assert f"{rendered}/blr_freeswitch/exotel-acl.xml: missing (would be written)\n" in out
    assert "kamailio.cfg" not in out
    assert out.endswith(
        f"{rendered}: 3 files differ from the manifests: run reconciler render-partner "
        f"{MANIFESTS} --output {rendered} and commit the result\n"
    )
    assert dispatcher.read_text() == edited  # --check writes nothing
    assert stale.exists()
    code, out, _ = run(capsys, str(MANIFESTS), "--output", str(rendered))
    assert code == 0
    assert f"{stale}: removed (no longer rendered)\n" in out
    assert not stale.exists()
    assert own.read_text() == "# mine\n"
    assert tree(rendered) == {**tree(EXPECTED), "blr_kamailio/kamailio.cfg": "# mine\n"}
    assert run(capsys, str(MANIFESTS), "--output", str(rendered), "--check")[0] == 0


def test_on_github_check_writes_a_summary_with_the_diff_and_outputs(
    rendered: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    summary, outputs = tmp_path / "summary.md", tmp_path / "outputs"
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    monkeypatch.setenv("GITHUB_OUTPUT", str(outputs))
    tls = rendered / "blr_kamailio" / "tls.cfg"
    tls.write_text(tls.read_text().replace("TLSv1.2+", "TLSv1.0+"))
    code, _, _ = run(capsys, str(MANIFESTS), "--output", str(rendered), "--check")
    assert code == 2
    said = summary.read_text()
    assert said.startswith(
        f"### reconciler render-partner --check: {rendered}: 1 file differs from the manifests\n"
    )
    assert f"| `{tls}` | differs (would be written) |" in said
    assert "-method = TLSv1.0+\n+method = TLSv1.2+\n" in said
    assert re.search(r"differs<<(\w+)\ntrue\n\1\n", outputs.read_text())
    assert f"\n{tls}\n" in outputs.read_text()


def test_a_partner_no_longer_declared_leaves_no_generated_files(
    rendered: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifests = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, manifests)
    trunks = (manifests / "trunks.yaml").read_text()
    (manifests / "trunks.yaml").write_text(trunks.replace("partner: blr_asterisk", "partner: none"))
    (manifests / "trunks.yaml").write_text(
        (manifests / "trunks.yaml")
        .read_text()
        .replace("partner: {name: blr_asterisk, credential: ivr_user}", "partner: none")
    )
    code, out, _ = run(capsys, str(manifests), "--output", str(rendered))
    assert code == 0
    assert f"{rendered}/blr_asterisk/pjsip_wizard_exotel.conf: removed" in out
    assert not (rendered / "blr_asterisk").exists()  # the folder it emptied, too
    assert (rendered / "blr_kamailio" / "exotel.cfg").exists()


def test_outside_the_chosen_partners_only_files_a_platform_writes_are_removed(
    rendered: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A folder no partner owns loses only generated files where a platform puts them:
    with --output ., a generated copy elsewhere (a golden file) is never touched."""
    gone = rendered / "old_partner" / "exotel.cfg"
    golden = rendered / "tests" / "golden" / "blr_kamailio" / "exotel.cfg"
    hidden = rendered / ".git" / "exotel.cfg"  # a hidden folder is never anyone's partner
    for file in (gone, golden, hidden):
        file.parent.mkdir(parents=True)
        file.write_text(f"# {partners.header(['old.yaml'])}\n")
    code, out, _ = run(capsys, str(MANIFESTS), "--output", str(rendered))
    assert code == 0
    assert out.startswith(f"{gone}: removed (no longer rendered)\n")
    assert not gone.parent.exists()
    assert golden.exists()
    assert hidden.exists()


def test_printing_to_stdout(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, str(MANIFESTS), "--output", "-")
    assert code == 0
    expected = tree(EXPECTED)
    chunks = re.split(r"^==> (\S+) <==\n", out, flags=re.MULTILINE)[1:]
    printed = dict(zip(chunks[::2], chunks[1::2], strict=True))
    assert sorted(printed) == sorted(expected)
    for name, text in printed.items():
        assert text.rstrip("\n") == expected[name].rstrip("\n")
    code, _, err = run(capsys, str(MANIFESTS), "--output", "-", "--check")
    assert code == 1
    assert "--check compares with a folder, so not with --output -" in err


def test_choosing_partners_renders_all_of_their_trunks(
    rendered: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    only = tmp_path / "only"
    code, out, err = run(
        capsys, str(MANIFESTS), "--output", str(only), "--partner", "blr_freeswitch"
    )
    assert code == 0
    assert tree(only) == {k: v for k, v in tree(EXPECTED).items() if k.startswith("blr_free")}
    assert "not rendered" not in err  # trunks of other partners were not asked for
    # --account mumbai: its partners, each with all of its trunks (prod's too).
    mumbai = tmp_path / "mumbai"
    code, _, err = run(capsys, str(MANIFESTS), "--output", str(mumbai), "--account", "mumbai")
    assert code == 0
    assert sorted(os.listdir(mumbai)) == ["blr_freeswitch", "blr_kamailio"]
    assert tree(mumbai / "blr_kamailio") == tree(EXPECTED / "blr_kamailio")
    # A narrowed run leaves other partners' folders alone, stale files and all.
    stale = rendered / "blr_asterisk" / "old.conf"
    stale.write_text(f"; {partners.header(['x.yaml'])}\n")
    code, out, _ = run(capsys, str(MANIFESTS), "--output", str(rendered), "--trunk", "support")
    assert (code, stale.exists()) == (0, True)
    assert "old.conf" not in out


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["--trunk", "lk_bot"],
            "--trunk lk_bot (account prod): partner blr_livekit is livekit, whose end plan and "
            "apply configure through LiveKit's API",
        ),
        (["--trunk", "plain"], "--trunk plain (account prod): partner: none\n"),
        (["--trunk", "fs_bots"], "--trunk fs_bots: the manifests declare no such trunk; did you"),
        (["--trunk", "ast_bot", "--account", "mumbai"], "account mumbai declares no such trunk"),
        (["--partner", "blr_livekit"], "--partner blr_livekit: partner blr_livekit is livekit"),
        (["--partner", "blr_kamailo"], "no such partner; did you mean 'blr_kamailio'?"),
        (["--account", "staging"], "no account named staging"),
    ],
)
def test_what_cannot_be_rendered_is_an_error_that_says_why(
    args: list[str], said: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, str(MANIFESTS), "--output", str(tmp_path / "out"), *args)
    assert code == 1
    assert said in err
    assert "Traceback" not in err
    assert not (tmp_path / "out").exists()


def test_a_trunk_without_a_partner_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``partner: none`` is reported as such, on the trunk or its account; a trunk whose
    account names none either is told how to name one."""
    manifests = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, manifests)
    accounts = (manifests / "accounts.yaml").read_text()
    (manifests / "accounts.yaml").write_text(
        accounts.replace("    sid: mum2\n", "    sid: mum2\n    partner: none\n")
    )
    (manifests / "trunks.yaml").write_text(
        (manifests / "trunks.yaml").read_text()
        + "\n".join(
            [
                "  - name: quiet",
                "    account: mumbai",
                '    phone_numbers: ["+912247788102"]',
                '    destination_uris: ["pbx.example.com:5061;transport=tls"]',
                "",
            ]
        )
    )
    code, _, err = run(capsys, str(manifests), "--output", str(tmp_path / "out"))
    assert code == 0, err
    assert "reconciler: not rendered: prod/plain: partner: none\n" in err
    assert "reconciler: not rendered: mumbai/quiet: partner: none (its account mumbai's)\n" in err
    (manifests / "accounts.yaml").write_text(accounts)  # mumbai names no partner at all
    code, _, err = run(capsys, str(manifests), "--output", str(tmp_path / "out"))
    assert code == 0, err
    assert (
        "reconciler: not rendered: mumbai/quiet: no partner (name one with partner:, on the "
        "trunk or its account)\n"
    ) in err
    code, _, err = run(capsys, str(manifests), "--output", "-", "--trunk", "quiet")
    assert code == 1
    assert "--trunk quiet (account mumbai): no partner (name one with partner:" in err


def test_an_empty_output_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--output '' would write into the current directory and show the files as
    /<partner>/..., as if at the root: it is an error (exit 1, never 2), before anything
    is read."""
    monkeypatch.chdir(tmp_path)
    for extra in ([], ["--check"]):
        code, out, err = run(capsys, str(MANIFESTS), "--output", "", *extra)
        assert (code, out) == (1, "")
        assert "reconciler: --output is empty: name the folder to write into" in err
        assert list(tmp_path.iterdir()) == []


def test_a_file_is_read_alone_and_the_error_says_where_its_accounts_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """PATH as one file is read alone, as plan reads it (manifests.load): the accounts
    and partners its trunks name but it does not declare are named, with the file of the
    folder that declares them, and the folder to give instead."""
    monkeypatch.chdir(tmp_path)
    shutil.copytree(MANIFESTS, "mine")
    code, out, err = run(capsys, "mine/trunks.yaml", "--output", "out")
    assert (code, out) == (1, "")
    assert err == (
        "reconciler: mine/trunks.yaml names accounts prod and mumbai, and partners "
        "blr_kamailio, blr_freeswitch, blr_asterisk and blr_livekit, which it does not "
        "declare: render-partner reads only the file it is given, as plan and apply do; "
        "mine/accounts.yaml declares them. Give the folder as PATH instead (reconciler "
        "render-partner mine); --account, --trunk and --partner choose what is rendered\n"
    )
    assert not Path("out").exists()
    code, _, err = run(capsys, "mine/routes.yaml", "--output", "out")
    assert code == 1
    assert err.startswith("reconciler: mine/routes.yaml names account prod, which it does not")
    assert "mine/accounts.yaml declares it." in err
    # Declared nowhere around it: the manifests' own errors, line by line.
    Path("mine/accounts.yaml").unlink()
    code, _, err = run(capsys, "mine/trunks.yaml", "--output", "out")
    assert code == 1
    assert "mine/trunks.yaml:4:14: error: trunks[0].account: unknown account 'prod'" in err
    assert err.rstrip().endswith("nothing was rendered")
    # A file that declares what it names renders as a folder does.
    one = Path("one.yaml")
    one.write_text(
        "\n---\n".join((MANIFESTS / name).read_text() for name in ("accounts.yaml", "trunks.yaml"))
    )
    code, out, err = run(capsys, "one.yaml", "--output", "out", "--partner", "blr_asterisk")
    assert code == 0, err
    assert "out/blr_asterisk/pjsip_wizard_exotel.conf: written (new)" in out


def test_the_ci_step_of_the_docs_works_as_written_from_the_repositorys_top(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/partners/*.md give one --check step for CI; --output is relative to the
    current directory (the repository's top), not to PATH."""
    step = "run: reconciler render-partner manifests --output partner-config --check"
    for page in ("kamailio", "freeswitch", "asterisk"):
        assert step in (DOCS / "partners" / f"{page}.md").read_text(), page
    monkeypatch.chdir(tmp_path)
    shutil.copytree(MANIFESTS, "manifests")
    command = step.removeprefix("run: reconciler render-partner ").split(" ")
    assert run(capsys, *command)[0] == 2  # nothing committed yet
    code, out, _ = run(capsys, *command[:-1])  # render it, once
    assert code == 0
    assert "partner-config/blr_kamailio/exotel.cfg: written (new)\n" in out
    assert tree(tmp_path / "partner-config") == tree(EXPECTED)
    assert not (tmp_path / "manifests" / "partner-config").exists()
    assert run(capsys, *command)[:2] == (0, "partner-config: up to date (8 files)\n")
    trunks = Path("manifests/trunks.yaml")
    trunks.write_text(trunks.read_text().replace("+918040264213", "+918040264216"))
    code, out, _ = run(capsys, *command)
    assert code == 2
    assert out.endswith(
        "partner-config: 1 file differs from the manifests: run reconciler render-partner "
        "manifests --output partner-config and commit the result\n"
    )


# -- the docs show what is rendered ------------------------------------------------------------

# The trunk of docs/partners.md's examples, with a partner of each platform in turn.
DOCS_ESTATE = """\
accounts:
  demo:
    sid: demo
    api_key: ${{EXOTEL_API_KEY}}
    api_token: ${{EXOTEL_API_TOKEN}}
    signalling:
      host: pstn.in2.exotel.com
      addresses: [203.0.113.10]
partners:
  sbc:
    platform: {platform}
trunks:
  - name: blr_bot
    account: demo
    phone_numbers: ["+918040264208"]
    destination_uris: ["sbc.example.com:5061;transport=tls"]
    alias: "+918040264208"
    credentials:
      - username: voice_ai_user
        password: ${{SIP_PASSWORD}}
    partner: sbc
"""


def example(page: Path, heading: str) -> list[str]:
    """The lines of the first code block under ``heading``."""
    after = page.read_text().split(f"\n{heading}\n", 1)[1]
    block = re.search(r"^```\w*\n(.*?)^```", after, flags=re.MULTILINE | re.DOTALL)
    assert block is not None, heading
    return block[1].splitlines()


@pytest.mark.parametrize(
    ("platform", "heading", "comment"),
    [
        ("kamailio", "## Kamailio (5.6, Debian bookworm)", "#"),
        ("freeswitch", "## FreeSWITCH", "<!--"),
        ("asterisk", "## Asterisk (PJSIP wizard)", ";"),
    ],
)
def test_the_examples_of_docs_partners_are_what_is_rendered(
    platform: str,
    heading: str,
    comment: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    (tmp_path / "all.yaml").write_text(DOCS_ESTATE.format(platform=platform))
    code, out, err = run(capsys, str(tmp_path / "all.yaml"), "--output", "-")
    assert code == 0, err
    rendered = {line.strip() for line in out.splitlines()}
    shown = [
        line.strip().replace("ACCOUNT_SID", "demo")
        for line in example(DOCS / "partners.md", heading)
        if line.strip() and not line.strip().startswith(comment)
    ]
    assert len(shown) >= 2
    assert [line for line in shown if line not in rendered] == []


def test_the_kamailio_page_includes_exotel_cfg_as_its_comment_says() -> None:
    cfg = (EXPECTED / "blr_kamailio" / "exotel.cfg").read_text()
    told = [line.removeprefix("#").strip() for line in cfg.splitlines() if line.startswith("#  ")]
    define = next(line for line in told if line.startswith("#!define EXOTEL_DIR"))
    include = next(line for line in told if line.startswith("include_file"))
    deploying = (DOCS / "partners" / "kamailio.md").read_text().split("## Deploying it")[1]
    block = example_text(deploying, "2. **Include it**")
    assert [line.strip() for line in block] == [define, include]


def example_text(text: str, after: str) -> list[str]:
    """The lines of the first code block after ``after`` in ``text``."""
    block = re.search(r"^\s*```\w*\n(.*?)^\s*```", text.split(after, 1)[1], re.M | re.S)
    assert block is not None, after
    return block[1].splitlines()


def test_broken_manifests_render_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    manifests = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, manifests)
    (manifests / "trunks.yaml").write_text(
        (manifests / "trunks.yaml").read_text().replace("partner: blr_freeswitch", "partner: nope")
    )
    code, _, err = run(capsys, str(manifests), "--output", str(tmp_path / "out"))
    assert code == 1
    assert "partner 'nope' is not declared" in err
    assert err.rstrip().endswith("nothing was rendered")
    assert not (tmp_path / "out").exists()


def test_one_trunk_name_in_two_accounts_gets_two_names() -> None:
    manifests = load(MANIFESTS)
    found = ends(
        manifests.accounts,
        manifests.partners,
        [t.spec for t in manifests.trunks],
        [r.spec for r in manifests.routes],
    )
    kamailio = [end for end in found if end.partner == "blr_kamailio"]
    assert [label for label, _ in partners.labels(kamailio)] == [
        "mumbai_blr_bot",
        "prod_blr_bot",
        "support",
    ]
    fs = [end for end in found if end.partner == "blr_freeswitch"]
    assert [label for label, _ in partners.labels(fs)] == ["fs_agents", "fs_bot"]


# -- Kamailio: the lists agree with the routes (Kamailio itself runs them in the slow tier) --


def test_kamailio_sets_and_groups_are_the_trunks_of_the_routes() -> None:
    dispatcher = (EXPECTED / "blr_kamailio" / "dispatcher.list").read_text()
    addresses = (EXPECTED / "blr_kamailio" / "address.list").read_text()
    routes = (EXPECTED / "blr_kamailio" / "exotel.cfg").read_text()
    for line in dispatcher.splitlines():
        if line.startswith("#"):
            continue
        setid, uri, flags, priority, attrs = line.split(" ")
        assert re.fullmatch(r"sip:[\w.-]+:\d+;transport=(tls|tcp)", uri)
        assert (flags, priority) == ("0", "0")
        label = attrs.removeprefix("duid=")
        where = routes.split(f"route[EXOTEL_TO_{label}]")[1]
        assert f'if (!ds_select_dst("{setid}", "4"))' in where
    for line in addresses.splitlines():
        if line.startswith("#"):
            continue
        group, address, mask, port, tag = line.split(" ")
        ipaddress.IPv4Network(f"{address}/{mask}")  # strict: the network's own address
        assert port == "0"
        assert f'allow_source_address("{group}")' in routes
        assert f'$avp(exotel_trunk) = "{tag}";' in routes


# -- FreeSWITCH: XML, in the syntax of its documentation and preprocessor --------------------

# Sofia gateway parameters: https://developer.signalwire.com/freeswitch/FreeSWITCH-Explained/
# Configuration/Sofia-SIP-Stack/Sofia-Gateway-Authentication-Params_7143510 (and the gateway
# loop of src/mod/endpoints/mod_sofia/sofia.c).
GATEWAY_PARAMS = {
    "register", "scheme", "realm", "username", "auth-username", "password",
    "caller-id-in-from", "extension", "extension-in-contact", "proxy", "context",
    "expire-seconds", "retry-seconds", "from-user", "from-domain", "register-proxy",
    "outbound-proxy", "contact-params", "register-transport", "ping",
}  # fmt: skip


def preprocess(text: str, environ: dict[str, str]) -> str:
    """FreeSWITCH's preprocessor as src/switch_xml.c runs it over an included file: lines
    with <include> or </include> dropped; a line naming X-PRE-PROCESS is a command (when
    the tag opens there) or dropped; $${name} replaced by the global variable (empty when
    unset); env-set sets a global variable from the environment (docs: mod_dptools:
    env-set)."""
    variables: dict[str, str] = {}
    kept = []
    for raw in text.splitlines():
        if "<include>" in raw or "</include>" in raw or "<?" in raw:
            continue
        line = re.sub(r"\$\$\{(\w+)\}", lambda m: variables.get(m[1], ""), raw)
        at = line.lower().find("x-pre-process")
        if at >= 0:
            assert line[at - 1] == "<", f"a comment names the preprocessor's tag: {line}"
            command = re.fullmatch(r'\s*<X-PRE-PROCESS cmd="env-set" data="(\w+)=\$(\w+)"/>', line)
            assert command, line
            if command[2] in environ:
                variables[command[1]] = environ[command[2]]
            continue
        kept.append(line)
    return "\n".join(kept)


def test_freeswitch_files_are_xml_in_the_documented_shape() -> None:
    gateways_text = (EXPECTED / "blr_freeswitch" / freeswitch.GATEWAYS).read_text()
    acl_text = (EXPECTED / "blr_freeswitch" / freeswitch.ACL).read_text()
    # As files: each is one XML document, <include> around the rest.
    for text in (gateways_text, acl_text):
        root = ElementTree.fromstring(text)
        assert root.tag == "include"
        assert "--" not in re.sub(r"<!--|-->", "", text)  # XML forbids -- in comments
        assert [line.strip() for line in text.splitlines()].count("<include>") == 1
    # As FreeSWITCH reads them: preprocessed, spliced into the profile's <gateways>.
    spliced = preprocess(gateways_text, {"FS_PASSWORD": "pw_from_env"})
    gateways = ElementTree.fromstring(f"<gateways>{spliced}</gateways>")
    found = {g.get("name"): {p.get("name"): p.get("value") for p in g} for g in gateways}
    assert sorted(found) == ["fs_agents", "fs_bot"]
    for params in found.values():
        assert set(params) <= GATEWAY_PARAMS
        assert params["register"] == "false"
        assert params["register-transport"] in ("tls", "tcp")
        assert params["realm"] == params["from-domain"]
    assert found["fs_bot"]["password"] == "pw_from_env"
    assert found["fs_bot"]["username"] == "fs_user"
    assert found["fs_bot"]["proxy"] == "pstn.in2.exotel.com:443"
    assert "password" not in found["fs_agents"]  # admitted by its whitelisted IP
    unset = ElementTree.fromstring(f"<gateways>{preprocess(gateways_text, {})}</gateways>")
    assert unset.find("gateway[@name='fs_bot']/param[@name='password']").get("value") == ""  # type: ignore[union-attr]
    # The ACL, spliced into acl.conf.xml's network-lists.
    lists = ElementTree.fromstring(f"<network-lists>{preprocess(acl_text, {})}</network-lists>")
    [listed] = lists
    assert listed.tag == "list"
    assert listed.get("name") == freeswitch.ACL_NAME
    assert listed.get("default") == "allow"  # account mumbai lists no addresses
    cidrs = [node.get("cidr") for node in listed]
    assert cidrs == ["203.0.113.10/32", "203.0.113.16/28"]
    for node in listed:
        assert node.get("type") == "allow"
        ipaddress.IPv4Network(node.get("cidr"))


# -- Asterisk: configuration files, in the syntax of pjsip_wizard.conf.sample ----------------

# configs/samples/pjsip_wizard.conf.sample (asterisk/asterisk): the wizard's own options,
# and the object prefixes whose options pass through.
WIZARD_OPTIONS = {
    "type", "sends_auth", "accepts_auth", "sends_registrations",
    "sends_line_with_registrations", "accepts_registrations", "remote_hosts", "outbound_proxy",
    "transport", "server_uri_pattern", "client_uri_pattern", "contact_pattern",
    "has_phoneprov", "has_hint", "hint_context", "hint_exten", "hint_application",
}  # fmt: skip
# configs/samples/pjsip.conf.sample: the options used here, per object.
PASSED = {
    "endpoint": {"context", "allow", "disallow", "media_encryption", "from_user", "from_domain"},
    "outbound_auth": {"username", "password", "realm", "auth_type"},
    "identify": {"match"},
}


def asterisk_sections(text: str) -> dict[str, dict[str, str]]:
    """Asterisk's configuration syntax (main/config.c): a ; anywhere starts a comment,
    \\; is a semicolon, ;-- opens a block comment (never here); [section] or
    [section](+), key = value, #include file."""
    sections: dict[str, dict[str, str]] = {}
    current: dict[str, str] | None = None
    for raw in text.splitlines():
        assert ";--" not in raw, raw
        line = re.split(r"(?<!\\);", raw, maxsplit=1)[0].replace("\\;", ";").strip()
        if not line:
            continue
        if line.startswith("#include "):
            continue
        header = re.fullmatch(r"\[(\w+)\](\(\+\))?", line)
        if header:
            # A new section is plain; one that adds to an earlier section says (+).
            assert bool(header[2]) == (header[1] in sections), line
            current = sections.setdefault(header[1], {})
            continue
        setting = re.fullmatch(r"([\w/]+) = (\S.*)", line)
        assert setting, line
        assert current is not None, line
        assert setting[1] not in current, f"{setting[1]} twice"
        current[setting[1]] = setting[2]
    return sections


def test_asterisk_files_are_wizard_sections_of_known_options() -> None:
    wizard_text = (EXPECTED / "blr_asterisk" / asterisk.WIZARD).read_text()
    template = (EXPECTED / "blr_asterisk" / asterisk.TEMPLATE).read_text()
    assert wizard_text.rstrip().endswith(f"#include {asterisk.SECRETS}")
    sections = asterisk_sections(wizard_text)
    assert sorted(sections) == ["ast_bot", "ast_ivr"]
    for name, options in sections.items():
        assert options["type"] == "wizard", name
        for key in options:
            prefix, _, option = key.partition("/")
            assert key in WIZARD_OPTIONS or option in PASSED.get(prefix, set()), key
        assert options["sends_registrations"] == "no"  # Exotel takes no REGISTER
        assert options["endpoint/allow"] == "!all,alaw,ulaw"
        assert options["endpoint/from_domain"] == "prod1.pstn.exotel.com"
        assert options["identify/match"] == "203.0.113.10,203.0.113.16/28"
        assert options["sends_auth"] == "yes"
        assert "outbound_auth/username" in options
        assert "outbound_auth/password" not in options
    assert sections["ast_bot"]["transport"] == "transport-tcp"
    assert "endpoint/media_encryption" not in sections["ast_bot"]
    assert sections["ast_ivr"]["endpoint/media_encryption"] == "sdes"
    assert sections["ast_ivr"]["outbound_auth/username"] == "ivr_user"
    # The deployment's step, as the files say: envsubst with the variables named, then
    # Asterisk reads the wizard file and the secrets it includes as one.
    command = re.search(r"envsubst '([^']*)' < (\S+) > (\S+)", wizard_text)
    assert command is not None
    assert command[2] == asterisk.TEMPLATE
    assert command[3] == f"/etc/asterisk/{asterisk.SECRETS}"
    listed = re.findall(r"\$\{(\w+)\}", command[1])
    assert listed == ["AST_IVR_PASSWORD", "AST_PASSWORD"]
    filled = re.sub(r"\$\{(\w+)\}", lambda m: SECRETS[m[1]] if m[1] in listed else m[0], template)
    merged = asterisk_sections(wizard_text.replace(f"#include {asterisk.SECRETS}", filled))
    assert merged["ast_bot"]["outbound_auth/password"] == SECRETS["AST_PASSWORD"]
    assert merged["ast_ivr"]["outbound_auth/password"] == SECRETS["AST_IVR_PASSWORD"]
    assert merged["ast_bot"]["contact_pattern"] == "sip:${REMOTE_HOST};transport=tcp"
    assert merged["ast_ivr"]["contact_pattern"] == "sip:${REMOTE_HOST};transport=tls"
