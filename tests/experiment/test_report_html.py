"""``sah report --html``: one self-contained, escaped file, rendered in headless chromium.

The study tree is tests/support/study.py (real mock-benchmark cells, a sweep, a failed cell
whose error text and predictions hold markup). The browser test needs Debian's ``chromium``
(``.ci/run`` installs it); it is skipped, saying so, only where no chromium can be found.
"""

from __future__ import annotations

import base64
import io
import json
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from sparse_attention_hub.cli import main
from tests.support.study import ERROR_TEXT, build_study

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
WINDOW = (1280, 2400)


class _Refs(HTMLParser):
    """Every src/href attribute and every tag name of a document."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.refs += [value or "" for name, value in attrs if name in ("src", "href")]


@pytest.fixture(scope="module")
def page(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = build_study(tmp_path_factory.mktemp("html") / "results")
    target = base.parent / "report.html"
    assert main(["-q", "report", str(base), "--html", str(target), "--resamples", "50"]) == 0
    return target


def test_html_is_self_contained(page: Path) -> None:
    parser = _Refs()
    parser.feed(page.read_text(encoding="utf-8"))
    assert parser.refs, "the figures are inline images"
    assert all(ref.startswith("data:image/png;base64,") for ref in parser.refs)
    assert "link" not in parser.tags and "iframe" not in parser.tags
    from PIL import Image

    for ref in parser.refs:
        with Image.open(io.BytesIO(base64.b64decode(ref.split(",", 1)[1]))) as image:
            image.verify()
    assert len(parser.refs) == 3  # quality vs density, per layer, per task


def test_html_holds_setup_table_samples_and_failures(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    for heading in ("Setup", "Results", "Figures", "Predictions", "Failures (1)"):
        assert f">{heading}</h2>" in text
    assert "topk.heavy_size=0.1" in text
    assert "&quot;heavy_size&quot;: 0.1" in text  # the expanded masker list, escaped
    assert "abc123" in text  # the git commit of the run
    assert re.search(r">50 ± \d", text)  # the streaming cell: score ± CI half-width
    assert "Alder Gold" in text  # a gold answer beside the predictions
    # text from the files is escaped, never markup
    assert "<script>alert" not in text and "<b>nothing" not in text
    assert "&lt;b&gt;nothing&lt;/b&gt;" in text
    assert "m / dense / fault_injection_raise: failed" in text
    escaped = ERROR_TEXT.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    assert escaped.replace("'", "&#x27;") in text


def test_html_embeds_the_per_cell_table_as_json(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    block = re.search(
        r'<script type="application/json" id="results-data">(.*?)</script>', text, re.S
    )
    assert block is not None
    rows = json.loads(block.group(1))
    assert len(rows) == 5
    assert {row["status"] for row in rows} == {"complete", "failed"}


def _browser() -> str | None:
    return next((path for name in BROWSERS if (path := shutil.which(name))), None)


def render(page: Path, shot: Path) -> tuple[list[str], np.ndarray]:
    """Render ``page`` in headless chromium: (its console lines, the screenshot in grey)."""
    browser = _browser()
    if browser is None:
        pytest.skip("chromium not found: install Debian's chromium (.ci/run does) to run this test")
    result = subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--screenshot={shot}",
            f"--window-size={WINDOW[0]},{WINDOW[1]}",
            "--enable-logging=stderr",
            "--v=0",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    console = [
        line for line in result.stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line
    ]
    from PIL import Image

    with Image.open(shot) as image:
        return console, np.asarray(image.convert("L"), dtype=np.float64)


def test_html_renders_in_headless_chromium(page: Path, tmp_path: Path) -> None:
    console, pixels = render(page, tmp_path / "shot.png")
    assert not console, "\n".join(console)  # the page logs nothing: no errors, no failed loads
    assert pixels.shape == (WINDOW[1], WINDOW[0])
    assert pixels.std() > 10.0  # not a blank page
    assert (pixels < 128).mean() > 0.005  # text and figures drawn in dark ink


def test_the_browser_check_sees_console_errors_and_blank_pages(tmp_path: Path) -> None:
    bad = tmp_path / "bad.html"
    bad.write_text("<!DOCTYPE html><html><body><script>missing_function();</script></body></html>")
    console, pixels = render(bad, tmp_path / "bad.png")
    assert any("Uncaught ReferenceError" in line for line in console)
    assert pixels.std() < 1.0  # an empty page is all white
