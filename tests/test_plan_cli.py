"""``reconciler plan`` as a user runs it: a subprocess against a sandbox process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.estate import PASSWORD, environ, seed, write
from tests.sandboxes import Api, Sandbox, running
from tests.test_plan import BASE

TOKEN_CANARY = "Tok3n_canary_d41d8"


def reconciler(*args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env},
        timeout=120,
        check=False,
    )


def test_exit_codes_and_out_file(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    folder = write(tmp_path / "manifests", BASE)
    env = environ(sandbox)
    result = reconciler("plan", "--detailed-exitcode", "--out", "plan.json", env=env, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Plan: 9 to create, 0 to update" in result.stdout
    saved = json.loads((tmp_path / "plan.json").read_text())
    assert saved["summary"]["create"] == 9
    assert saved["checksum"] in result.stdout
    seed(api, folder)
    result = reconciler("plan", "--detailed-exitcode", env=env, cwd=tmp_path)
    assert (result.returncode, result.stderr) == (0, "")
    assert "No changes. Live state matches the manifests." in result.stdout
    assert reconciler("plan", env=env, cwd=tmp_path).returncode == 0


def test_unknown_account_and_missing_secrets(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    write(tmp_path / "manifests", BASE)
    result = reconciler("plan", "--account", "prod", env=environ(sandbox), cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr == "reconciler: no account named prod (declared: demo)\n"  # no near name
    env = {**environ(sandbox), "EXOTEL_API_TOKEN": ""}  # plans need no SIP passwords
    result = reconciler("plan", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "environment variable EXOTEL_API_TOKEN is set but empty" in result.stderr
    assert "nothing was sent to Exotel" in result.stderr


def test_invalid_manifests_stop_before_any_call(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    write(tmp_path / "manifests", BASE.replace("44.248.146.11,", "10.0.0.1,"))
    result = reconciler("plan", env=environ(sandbox), cwd=tmp_path)
    assert result.returncode == 1
    assert "10.0.0.1 is a private address" in result.stderr
    assert sandbox.stats()["requests"] == 0


def test_a_wrong_token_names_the_account(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    write(tmp_path / "manifests", BASE)
    env = {**environ(sandbox), "EXOTEL_API_TOKEN": TOKEN_CANARY}
    result = reconciler("plan", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith(
        "reconciler: account demo: Exotel refused the API key and token (HTTP 401)"
    )
    assert "Traceback" not in result.stderr
    assert TOKEN_CANARY not in result.stdout + result.stderr


def test_an_unreachable_api_is_a_clear_error(tmp_path: Path) -> None:
    write(tmp_path / "manifests", BASE)
    env = {
        "EXOTEL_BASE_URL": "http://127.0.0.1:9",
        "RECONCILER_ALLOWED_HOSTS": "127.0.0.1:9",
        "EXOTEL_API_KEY": "k",
        "EXOTEL_API_TOKEN": "t",
        "SIP_PASSWORD": "p",
    }
    started = time.monotonic()
    result = reconciler("plan", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert (
        "reconciler: Exotel API: account demo: GET /v2/accounts/demo/trunks: "
        "cannot connect to http://127.0.0.1:9" in result.stderr
    )
    assert "Traceback" not in result.stderr
    assert time.monotonic() - started < 5  # a refused port fails at once, not after retries
    # A URL without its scheme is told so, not sent anywhere.
    schemeless = reconciler("plan", env={**env, "EXOTEL_BASE_URL": "127.0.0.1:8799"}, cwd=tmp_path)
    assert schemeless.returncode == 1
    assert "EXOTEL_BASE_URL '127.0.0.1:8799' is not a URL: write it with its scheme" in (
        schemeless.stderr
    )


def test_secrets_never_appear_in_any_output_format_or_log(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    folder = write(tmp_path / "manifests", BASE)
    seed(api, folder)
    rotated = "friendly_name: bot_label\n      password_version: 3"
    write(folder, BASE.replace("friendly_name: bot_label", rotated))
    env = {**environ(sandbox)}
    seen = []
    for fmt in ("text", "markdown", "json"):
        result = reconciler(
            "-vv", "plan", "--format", fmt, "--out", f"plan-{fmt}.json", env=env, cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        seen += [result.stdout, result.stderr, (tmp_path / f"plan-{fmt}.json").read_text()]
    assert "exotel.request" in seen[1]  # -vv logs every request...
    everything = "\n".join([*seen, (folder / "state" / "demo.json").read_text()])
    assert "(sensitive)" in everything
    for secret in (PASSWORD, "demo_token"):
        assert secret not in everything  # ...but never a credential


def test_rate_limiting_is_recovered_without_failing(tmp_path: Path) -> None:
    # Twelve new DIDs: the plan looks each up (trunk-maps), 13 calls against 4 a second.
    numbers = "".join(f'    - "+9180402642{i:02d}"\n' for i in range(12))
    write(tmp_path / "manifests", f"- name: bot\n  account: demo\n  phone_numbers:\n{numbers}")
    with running(
        "--rate-limit", "4", "--rate-window", "1", log_path=tmp_path / "sb.log"
    ) as limited:
        result = reconciler("plan", env=environ(limited), cwd=tmp_path)
        assert result.returncode == 0, result.stderr
        assert limited.stats()["by_status"].get("429", 0) > 0  # it was limited...
    assert "Plan: 13 to create" in result.stdout  # ...and finished anyway


@pytest.mark.parametrize("fault", ["error_500", "drop_connection", "rate_limit"])
def test_reads_are_retried_through_faults(
    tmp_path: Path, sandbox: Sandbox, api: Api, fault: str
) -> None:
    folder = write(tmp_path / "manifests", BASE)
    seed(api, folder)
    rule = {"method": "GET", "path": "*/phone-numbers", "fault": fault, "count": 2}
    if fault == "rate_limit":
        rule["retry_after"] = False  # the client must back off on its own
    sandbox.faults(rule)
    result = reconciler("plan", "--detailed-exitcode", env=environ(sandbox), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert sandbox.control("GET", "faults")["rules"][0]["count"] == 0


def test_profile_full_on_an_account_with_the_minimal_api_suggests_minimal(
    tmp_path: Path, minimal_sandbox: Sandbox
) -> None:
    minimal_sandbox.reset()
    write(tmp_path / "manifests", BASE, profile="full")
    result = reconciler("plan", env=environ(minimal_sandbox), cwd=tmp_path)
    assert result.returncode == 1
    assert "HTTP 404" in result.stderr
    assert "set api: minimal on account demo" in result.stderr


def test_an_https_sandbox_is_trusted_through_ssl_cert_file(tmp_path: Path) -> None:
    """What the README says for --certfile: clients trust the sandbox's CA with
    SSL_CERT_FILE; without it, the certificate is refused (never accepted blindly)."""
    import ssl  # noqa: PLC0415

    import trustme  # noqa: PLC0415

    from tests.sandboxes import running  # noqa: PLC0415

    authority = trustme.CA()
    certificate = authority.issue_cert("127.0.0.1", "localhost")
    certfile, keyfile, ca = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    certificate.cert_chain_pems[0].write_to_path(certfile)
    certificate.private_key_pem.write_to_path(keyfile)
    authority.cert_pem.write_to_path(ca)
    context = ssl.create_default_context()
    authority.configure_trust(context)
    write(tmp_path / "manifests", BASE)
    with running(
        "--certfile", str(certfile), "--keyfile", str(keyfile),
        log_path=tmp_path / "sandbox.log", verify=context,
    ) as sandbox:  # fmt: skip
        assert sandbox.url.startswith("https://")
        untrusted = reconciler("plan", env=environ(sandbox), cwd=tmp_path)
        assert untrusted.returncode == 1
        assert "certificate" in untrusted.stderr.lower()
        trusted = reconciler(
            "plan", env={**environ(sandbox), "SSL_CERT_FILE": str(ca)}, cwd=tmp_path
        )
        assert trusted.returncode == 0, trusted.stderr


def test_misspelt_names_get_a_did_you_mean_everywhere(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    del api
    folder = write(tmp_path / "manifests", BASE)
    env = environ(sandbox)
    account = reconciler("plan", "--account", "dmeo", env=env, cwd=tmp_path)
    assert "no account named dmeo; did you mean 'demo'?" in account.stderr
    check = reconciler("check", "--trunk", "bto", env={}, cwd=tmp_path)
    assert "no trunk named bto; did you mean 'bot'?" in check.stderr
    (folder / "routes.yaml").write_text(
        "routes:\n  - did: '+918040264208'\n    account: demo\n    default: {trunk: bto}\n"
    )
    route = reconciler("validate", env={}, cwd=tmp_path)
    assert "trunk 'bto' is not declared in account demo; did you mean 'bot'?" in route.stdout
    (folder / "routes.yaml").unlink()
    shown = reconciler("state", "show", "bto", env={}, cwd=tmp_path)
    assert "did you mean 'bot'?" in shown.stderr


def test_a_set_password_exotel_would_refuse_stops_a_plan_too(
    tmp_path: Path, sandbox: Sandbox, api: Api
) -> None:
    """Plans need no SIP passwords, but one that is set and that Exotel would refuse is an
    error before any call: the plan must not show a rotation that cannot happen."""
    del api
    write(tmp_path / "manifests", BASE)
    bad = reconciler("plan", env=environ(sandbox, SIP_PASSWORD="bad-pw!x"), cwd=tmp_path)
    assert bad.returncode == 1
    assert "must be 1 to 64 letters, digits or underscores" in bad.stderr
    assert "bad-pw!x" not in bad.stderr
    assert sandbox.stats()["requests"] == 0
