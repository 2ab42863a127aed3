"""Diagrams: ``reconciler graph`` and the plan comment's picture of what changes, drawn by
the real Mermaid library in headless Chromium, which fails on a parse or render error."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from reconciler import diagram
from reconciler.plan.actions import Plan
from tests.estate import apply, environ, plan
from tests.mermaid import render, screenshot
from tests.sandboxes import Api, Sandbox
from tests.test_plan_cli import reconciler

ROOT = Path(__file__).parents[1]


def blocks(markdown: str) -> list[str]:
    return re.findall(r"```mermaid\n(.*?)```", markdown, re.DOTALL)


def test_the_example_topology_renders(tmp_path: Path) -> None:
    result = reconciler("graph", env={}, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    [drawn] = render([result.stdout], tmp_path)
    assert drawn["ok"], drawn.get("error")
    for label in ("blr_voicebot", "mum_contact_ctr", "+918040264208", "sbc1.mum.example.com"):
        assert label in drawn["svg"]
    markdown = reconciler("graph", "--format", "markdown", env={}, cwd=ROOT).stdout
    assert blocks(markdown) == [result.stdout]


def test_a_broken_diagram_fails(tmp_path: Path) -> None:
    """The renderer used here does fail: what it accepts is proven, not assumed."""
    [drawn] = render(["flowchart LR\n  a -->> b[["], tmp_path)
    assert not drawn["ok"]
    assert "Parse error" in drawn["error"]


def test_labels_cannot_break_out_of_their_nodes(tmp_path: Path) -> None:
    picture = diagram.Picture()
    hostile = 'x"]) --> evil[("<b>&'
    one = picture.node(("a",), "trunk", hostile)
    two = picture.node(("b",), "destination", "end")
    picture.edge(one, two, hostile)
    text = diagram._flowchart(picture, legend=False)
    [drawn] = render([text], tmp_path)
    assert drawn["ok"], drawn.get("error")
    assert "evil" not in re.findall(r'id="[^"]*"', drawn["svg"])


def test_the_plan_comment_pictures_what_changes(tmp_path: Path, sandbox: Sandbox, api: Api) -> None:
    """Created, removed and changed parts are marked, and GitHub's renderer accepts them."""
    del api
    folder = tmp_path / "manifests"
    shutil.copytree(ROOT / "manifests", folder, ignore=shutil.ignore_patterns("state"))
    env = environ(sandbox, SIP_PASSWORD_MUM_PBX="a_password_1", SIP_PASSWORD_BLR_BOT="b_pw_1")
    first: Plan = plan(folder, sandbox)
    created = diagram.changes(first)
    assert "class " in created
    assert " added" in created
    assert apply(folder, sandbox, env=env).converged
    contact = folder / "contact_centre.yaml"
    text = contact.read_text()
    text = text.replace('      - "+912247788102"\n', "")  # a DID removed
    text = text.replace("weight: 3", "weight: 2")  # a destination changed
    contact.write_text(text)
    routes = folder / "routes.yaml"
    routes.write_text(routes.read_text().replace("X-Bot-Persona: sales", "X-Bot-Persona: ops"))
    second = plan(folder, sandbox)
    changed = diagram.changes(second)
    assert " removed" in changed
    assert " changed" in changed
    markdown = reconciler("plan", "--format", "markdown", env=env, cwd=tmp_path).stdout
    pictures = blocks(markdown)
    assert len(pictures) == 1
    golden = blocks((ROOT / "tests" / "golden" / "plan.md").read_text())  # manual, replace too
    results = render([created, changed, pictures[0], *golden], tmp_path / "render")
    assert len(results) == 4
    for drawn in results:
        assert drawn["ok"], drawn.get("error")
    assert "+912247788102" in results[1]["svg"]


def test_the_screenshot_in_the_docs_is_of_the_example_topology(tmp_path: Path) -> None:
    """docs/topology.png: redrawn here from the example manifests, so it can be refreshed
    with ``python -m tests.mermaid`` (see its __main__) whenever the examples change."""
    drawn = reconciler("graph", env={}, cwd=ROOT).stdout
    png = tmp_path / "topology.png"
    screenshot(drawn, png, tmp_path)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    committed = ROOT / "docs" / "topology.png"
    assert committed.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
