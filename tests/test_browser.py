"""The report in a real browser: headless Chromium (Debian's ``chromium`` package) opens the HTML
of analyses/tiny.toml with no console messages, decodes every embedded figure, finds no figure whose
own check (`mscbayes.plots.figure_problems`, recorded as ``data-axes-labelled``) reports an unlabelled
axis, shows no traceback text, and its screenshot is non-blank at a readable size.

Skipped when Chromium is not installed locally; a failure when ``CI=true`` (CI installs it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from .test_analysis import tiny_run

CANDIDATES = ("/usr/bin/chromium", "/usr/bin/chromium-browser")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--enable-logging=stderr", "--v=0",
         "--window-size=1280,2000")
#: Console output in Chromium's log (every level is logged as INFO:CONSOLE) and load failures.
PROBLEM = re.compile(r"INFO:CONSOLE|ERROR:CONSOLE|Uncaught|net::ERR_|Failed to load resource|"
                     r"Not allowed to load local resource", re.IGNORECASE)
PROBE = """<script>window.addEventListener("load", function () {
  var imgs = document.images, broken = 0, unlabelled = 0;
  for (var i = 0; i < imgs.length; i++) {
    if (!(imgs[i].complete && imgs[i].naturalWidth > 0)) { broken++; }
    if (imgs[i].getAttribute("data-axes-labelled") !== "true") { unlabelled++; }
  }
  var text = document.body.innerText, traceback = /Traceback|File "|Error:/.test(text) ? 1 : 0;
  console.log("MSCBAYES-PROBE images=" + imgs.length + " broken=" + broken + " unlabelled=" + unlabelled +
              " traceback=" + traceback + " sections=" + document.querySelectorAll("section").length);
});</script>"""


def _chromium() -> str:
    for path in CANDIDATES:
        if Path(path).is_file() and os.access(path, os.X_OK):
            return path
    found = shutil.which("chromium")
    if found:
        return found
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("CI=true but Chromium is not installed: .ci/run must install Debian's 'chromium' package")
    pytest.skip("Chromium is not installed (apt-get install chromium); the browser check runs in CI")


def _open(page: Path, tmp: Path, shot: Path) -> list[str]:
    """Load `page` headless, take a screenshot; return the problem lines of Chromium's log."""
    cmd = [_chromium(), *FLAGS, f"--user-data-dir={tmp / 'profile'}", f"--screenshot={shot}", page.resolve().as_uri()]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=tmp)
    log = proc.stderr + proc.stdout
    assert proc.returncode == 0, f"chromium exited with {proc.returncode}:\n{log[-3000:]}"
    assert shot.is_file(), f"no screenshot written:\n{log[-3000:]}"
    return [line for line in log.splitlines() if PROBLEM.search(line)]


def _pixels(shot: Path) -> np.ndarray:
    import matplotlib.image as mpimg

    return np.asarray(mpimg.imread(str(shot)), dtype=float)


def _tiny_page(tmp_path) -> Path:
    """The tiny run's report rendered from its Report (tests/test_analysis.py re-runs into the run's folder
    without figures, so the file on disk may lack them)."""
    page = tmp_path / "report.html"
    page.write_text(tiny_run().report.html(), encoding="utf-8")
    return page


def test_report_opens_without_console_errors_and_renders(tmp_path):
    _chromium()
    page = _tiny_page(tmp_path)
    shot = tmp_path / "report.png"
    problems = _open(page, tmp_path, shot)
    assert problems == [], "\n".join(problems)
    img = _pixels(shot)
    height, width = img.shape[:2]
    assert width >= 1000 and height >= 1000, img.shape
    assert img[..., :3].var() > 0
    # not a blank page: a visible share of the screen is text, tables or the banner
    non_white = (img[..., :3] < 0.9).any(axis=-1).mean()
    assert non_white > 0.02, non_white


def test_every_figure_decodes_in_the_browser(tmp_path):
    _chromium()
    html = _tiny_page(tmp_path).read_text(encoding="utf-8")
    n_img = html.count("<img ")
    assert n_img >= 5
    probed = tmp_path / "probe.html"
    probed.write_text(html.replace("</body>", PROBE + "</body>"), encoding="utf-8")
    lines = _open(probed, tmp_path, tmp_path / "probe.png")
    probe = [line for line in lines if "MSCBAYES-PROBE" in line]
    assert probe, "the probe script did not report:\n" + "\n".join(lines)
    assert f"images={n_img} broken=0 unlabelled=0 traceback=0 sections=8" in probe[0], probe[0]
    assert [line for line in lines if "MSCBAYES-PROBE" not in line] == []


def test_the_probe_counts_unlabelled_figures_and_traceback_text(tmp_path):
    """Negative control of the probe: an image marked unlabelled, one without the mark, and traceback text."""
    _chromium()
    dot = ("data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQ"
           "AAAABJRU5ErkJggg==")
    page = tmp_path / "marked.html"
    page.write_text(f'<!DOCTYPE html><html><body><section><img src="{dot}" data-axes-labelled="false">'
                    f'<img src="{dot}"><img src="{dot}" data-axes-labelled="true">'
                    '<p>Traceback (most recent call last):</p></section>' + PROBE + "</body></html>",
                    encoding="utf-8")
    lines = _open(page, tmp_path, tmp_path / "marked.png")
    probe = [line for line in lines if "MSCBAYES-PROBE" in line]
    assert probe and "images=3 broken=0 unlabelled=2 traceback=1 sections=1" in probe[0], lines


def test_the_log_check_catches_errors(tmp_path):
    """Negative control: a page with a script error and a console error is flagged."""
    _chromium()
    bad = tmp_path / "bad.html"
    bad.write_text('<!DOCTYPE html><html><body><p>x</p><script>console.error("boom"); nope();</script>'
                   "</body></html>", encoding="utf-8")
    problems = _open(bad, tmp_path, tmp_path / "bad.png")
    assert any("boom" in p for p in problems) and any("Uncaught" in p for p in problems), problems
