"""Mermaid diagrams rendered as GitHub renders them: the real Mermaid library (from npm,
``node_modules/mermaid``) in headless Chromium (Debian's ``chromium``).

``render(diagrams, folder)`` parses and renders each diagram in one page and returns, per
diagram, ``{"ok": True, "svg": "..."}`` or ``{"ok": False, "error": "..."}``;
``screenshot(diagram, png)`` draws one to a PNG. Without Chromium or Mermaid the tests
skip, naming what to install (they fail instead under ``RECONCILER_REQUIRE_TOOLS``).
"""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tests.sipservers import missing, need

ROOT = Path(__file__).parents[1]
MERMAID = ROOT / "node_modules" / "mermaid" / "dist" / "mermaid.min.js"
SCRIPT = """
mermaid.initialize({startOnLoad: false, securityLevel: "strict", theme: "default"});
const diagrams = %s;
(async () => {
  const out = [];
  for (const [index, text] of diagrams.entries()) {
    try {
      await mermaid.parse(text);
      const drawn = await mermaid.render("diagram" + index, text);
      out.push({ok: true, svg: drawn.svg});
      if (diagrams.length === 1) document.getElementById("shown").innerHTML = drawn.svg;
    } catch (error) {
      out.push({ok: false, error: String((error && error.message) || error)});
    }
  }
  document.getElementById("out").textContent = JSON.stringify(out);
})();
"""


def _chromium() -> str:
    need("chromium", "chromium")
    if not MERMAID.exists():
        missing("Mermaid is not installed (node_modules/mermaid: run npm ci, as make test does)")
    found = shutil.which("chromium")
    assert found is not None
    return found


def _page(diagrams: Sequence[str], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = json.dumps(list(diagrams)).replace("</", "<\\/")
    page = folder / "diagrams.html"
    page.write_text(
        '<!doctype html><html><head><meta charset="utf-8"></head>'
        '<body style="margin:16px;background:#fff"><div id="shown"></div>'
        '<pre id="out" style="display:none">pending</pre>'
        f'<script src="{MERMAID.as_uri()}"></script><script>{SCRIPT % data}</script>'
        "</body></html>",
        encoding="utf-8",
    )
    return page


def _run(chromium: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu",
            "--allow-file-access-from-files", "--virtual-time-budget=30000", *args,
        ],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def render(diagrams: Sequence[str], folder: Path) -> list[dict[str, Any]]:
    chromium = _chromium()
    page = _page(diagrams, folder)
    result = _run(chromium, "--dump-dom", page.as_uri())
    found = re.search(r'<pre id="out"[^>]*>(.*?)</pre>', result.stdout, re.DOTALL)
    assert found is not None, result.stderr[-2000:]
    text = html.unescape(found[1])
    assert text != "pending", "Mermaid did not finish: " + result.stderr[-2000:]
    answers: list[dict[str, Any]] = json.loads(text)
    return answers


def screenshot(diagram: str, png: Path, folder: Path, *, size: str = "1400,900") -> None:
    chromium = _chromium()
    page = _page([diagram], folder)
    result = _run(chromium, f"--screenshot={png}", f"--window-size={size}", page.as_uri())
    assert png.exists(), result.stderr[-2000:]


if __name__ == "__main__":  # refresh docs/topology.png from the example manifests
    import sys
    import tempfile

    drawn = subprocess.run(
        [sys.executable, "-m", "reconciler", "graph"], cwd=ROOT, capture_output=True,
        text=True, check=True,
    ).stdout  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        screenshot(drawn, ROOT / "docs" / "topology.png", Path(scratch), size="1500,760")
