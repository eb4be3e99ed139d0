"""The report shows every string that comes from data as text, checked in a real headless browser.

Every string value in every file of a run folder (questions, answers, ids, entity ids, model
names, prompts, completions, config values, statements, ...) gets a payload of markup that
would run script or add elements if it reached the page unescaped. The report and the
comparison page are rendered, loaded in headless Chromium with scripts on, and the DOM the
browser built is dumped: no element the payload would create may be in it, and the payload
must be there as text. Skipped where no Chromium is installed (Debian: `apt-get install
chromium`).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

import probe

# Each part would add a <pwned> element (or an attribute on <body>) if the browser ran it.
PAYLOAD = ("<script>document.body.appendChild(document.createElement('pwned'))</script>"
           "<img src=x onerror=\"document.body.appendChild(document.createElement('pwned'))\">"
           "'\"><svg onload=document.body.setAttribute('data-pwned',1)>"
           "</td></table></pre><b class=pwned-markup>bold</b>")
# Values the report reads as names of things (settings, statuses) keep their meaning.
KEEP_FIELDS = {"setting", "status", "backend", "index", "scoring", "_source"}


def _poison(value, key=None):
    if isinstance(value, str) and key not in KEEP_FIELDS:
        return value + PAYLOAD
    if isinstance(value, list):
        return [_poison(v, key) for v in value]
    if isinstance(value, dict):
        return {k: _poison(v, k) for k, v in value.items()}
    return value


def _poison_folder(folder: Path) -> int:
    n = 0
    for path in sorted(folder.rglob("*")):
        if path.suffix == ".jsonl":
            lines = [json.dumps(_poison(json.loads(line))) for line in path.read_text().splitlines() if line]
            path.write_text("\n".join(lines) + "\n")
            n += 1
        elif path.suffix == ".json":
            path.write_text(json.dumps(_poison(json.loads(path.read_text()))))
            n += 1
    return n


def _browser() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def _dump_dom(browser: str, page: Path, profile: Path) -> str:
    result = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-dev-shm-usage", f"--user-data-dir={profile}", "--virtual-time-budget=3000",
         "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


@pytest.fixture(scope="module")
def poisoned_pages(synthetic_run, tmp_path_factory) -> list[Path]:
    base = tmp_path_factory.mktemp("poisoned")
    run_dir = base / "run"
    shutil.copytree(synthetic_run, run_dir)
    assert _poison_folder(run_dir) >= 6
    other = base / "other"
    shutil.copytree(run_dir, other)
    report = probe.write_report(run_dir)
    compare = probe.compare_runs([run_dir, other], base / "compare",
                                 labels=["one" + PAYLOAD, "two" + PAYLOAD])
    return [report, Path(compare)]


def _markup_from_data(page: str) -> list[str]:
    """Tags or attributes in `page` that only the payload could have put there."""
    from html.parser import HTMLParser

    found: list[str] = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            if tag in ("script", "svg", "pwned"):
                found.append(f"<{tag}>")
            for name, value in attrs:
                if name.startswith("on") or (value or "").startswith("javascript:") or "pwned" in (value or ""):
                    found.append(f"<{tag} {name}={value!r}>")
            if tag == "img" and not (dict(attrs).get("src") or "").startswith("data:image/"):
                found.append(f"<img src={dict(attrs).get('src')!r}>")

    Parser().feed(page)
    return found


def test_poisoned_strings_reach_the_report_escaped(poisoned_pages):
    """Without a browser: the payload is in each page as escaped text, never as markup."""
    for page in poisoned_pages:
        text = page.read_text(encoding="utf-8")
        assert text.count("&lt;script&gt;document.body.appendChild") >= 2, page.name
        assert _markup_from_data(text) == [], page.name


def test_report_in_a_headless_browser_runs_no_data_and_shows_it_as_text(poisoned_pages, tmp_path):
    browser = _browser()
    if browser is None:
        pytest.skip("no Chromium installed (Debian: apt-get install chromium)")
    for page in poisoned_pages:
        dom = _dump_dom(browser, page, tmp_path / "profile")
        assert "<h1>" in dom, dom[:500]  # the browser rendered the page
        assert "<pwned" not in dom, f"{page.name}: a data string ran as script"
        assert "data-pwned" not in dom.split("<body", 1)[1].split(">", 1)[0], f"{page.name}: svg onload ran"
        assert '<b class="pwned-markup">' not in dom, f"{page.name}: a data string became markup"
        assert "&lt;script&gt;document.body.appendChild" in dom  # shown as text
