"""The README and the documentation site: a short README without internal references, a site that builds strict
(no dead link or reference) and renders in a real browser, and generated pages that say what their sources say."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
TOOLS = ROOT / "tools" / "docs"
# what a reader of the README cannot follow: references into the project's history
INTERNAL = {"an issue number": r"issue \d", "a benchmark case number": r"case \d",
            "a bare commit hash": r"\b[0-9a-f]{7,40}\b", "'last time'": r"last time",
            "'previous session'": r"previous session"}
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def _module(name: str):
    spec = importlib.util.spec_from_file_location(f"rlpipe_docs_{name}", TOOLS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_readme_is_short_and_has_no_internal_references():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    found = {what: re.findall(pattern, text, flags=re.IGNORECASE if " " in pattern else 0)
             for what, pattern in INTERNAL.items()}
    assert not {what: hits for what, hits in found.items() if hits}
    # it starts with the two commands, and keeps the line the suite's timing goes in
    first_block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    assert [line.split()[:2] for line in first_block.strip().splitlines()] == [["make", "run"], ["make", "test"]]
    assert re.search(r"^Test suite: .*\(measured .*\)", text, flags=re.MULTILINE)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """The site as `make docs` builds it (strict), into a temporary folder."""
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(out)], cwd=ROOT,
                           capture_output=True, text=True, timeout=180, env={**os.environ, "NO_MKDOCS_2_WARNING": "1"})
    assert build.returncode == 0, build.stderr[-3000:]
    return out


def test_site_builds_strict_with_every_page(site):
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text())
    # a dead link, anchor or nav entry is a warning, and under strict a warning fails the build (and this suite)
    assert config["strict"] is True
    assert {config["validation"]["links"][k] for k in ("not_found", "anchors", "unrecognized_links")} == {"warn"}
    assert {config["validation"]["nav"][k] for k in ("omitted_files", "not_found")} == {"warn"}
    for page in ("index.html", "getting-started.html", "architecture.html", "benchmarks.html",
                 "reference/configuration.html", "reference/api.html", "adding-an-algorithm.html"):
        assert (site / page).is_file(), page
    api = (site / "reference" / "api.html").read_text()
    for name in ("rlpipe.api.train", "rlpipe.rl.run.train", "rlpipe.rl.algorithm.Algorithm.make_iteration"):
        assert f'id="{name}"' in api, name


def _dom(url: str, profile: Path) -> str:
    chromium = shutil.which("chromium")
    done = subprocess.run([chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url],
                          capture_output=True, text=True, timeout=90)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.skipif(shutil.which("chromium") is None,
                    reason="headless browser missing: no `chromium` on PATH (make test installs it with apt-get)")
def test_site_renders_in_headless_chromium(site, tmp_path):
    home = _dom((site / "index.html").as_uri(), tmp_path / "profile")
    deep = _dom((site / "reference" / "configuration.html").as_uri(), tmp_path / "profile")
    for dom in (home, deep):
        nav = dom.split('class="md-nav md-nav--primary"', 1)
        assert len(nav) == 2, "no primary navigation in the rendered page"
        for label in ("Getting started", "Architecture", "Benchmarks", "Configuration reference"):
            assert label in nav[1], label
    assert re.search(r"<h1[^>]*>rlpipe", home) and "Both need only" in home and "kedro-viz-sac.png" in home
    assert re.search(r"<h1[^>]*>Configuration reference", deep)
    assert "<code>sac.train.batch_size</code>" in deep
    assert "md-header" in deep and "md-sidebar" in deep  # Material's layout, drawn by the browser


def test_configuration_reference_names_every_key_with_its_default():
    page = _module("config_reference").page(ROOT / "conf" / "schemas")
    for path in sorted((ROOT / "conf" / "schemas").glob("*.json")):
        schema = json.loads(path.read_text())
        defs = schema.get("$defs", {})
        for section, ref in schema["properties"].items():
            node = defs[ref["$ref"].rsplit("/", 1)[-1]]
            for key, prop in node["properties"].items():
                row = next((line for line in page.splitlines() if line.startswith(f"| `{section}.{key}` |")), None)
                assert row is not None, f"{path.name}: {section}.{key}"
                if "default" in prop and not isinstance(prop["default"], (dict, list)) and "$ref" not in prop:
                    assert f"`{json.dumps(prop['default'])}`" in row, row


def _results_copy(tmp_path: Path, names: list[str]) -> Path:
    """A project root holding benchmarks/run.py and only the named results files."""
    (tmp_path / "benchmarks" / "results").mkdir(parents=True)
    shutil.copy(ROOT / "benchmarks" / "run.py", tmp_path / "benchmarks" / "run.py")
    for name in names:
        shutil.copy(ROOT / "benchmarks" / "results" / name, tmp_path / "benchmarks" / "results" / name)
    return tmp_path


def test_benchmark_page_shows_each_measurement_once_from_its_newest_file(tmp_path):
    older, newer = "2026-11-23T01.11.17Z.json", "2026-11-23T19.40.17Z.json"  # both measure SAC throughput
    page = _module("benchmark_page").page(_results_copy(tmp_path, [older, newer]))
    assert page.count("### SAC throughput at identical hyperparameters") == 1
    throughput = page.split("### SAC throughput at identical hyperparameters", 1)[1].split("\n### ", 1)[0]
    date = json.loads((ROOT / "benchmarks" / "results" / newer).read_text())["machine"]["date"][:10]
    assert newer in throughput and older not in page and f"Measured {date}" in throughput
    assert page.index("## Like for like") < page.index("## Tuned against tuned") < page.index("## Targets")
    targets = page.split("## Targets", 1)[1]
    assert targets.count("gradient steps/s ≥ 1.5× SB3's") == 1


def test_benchmark_page_of_all_results_names_dates_machines_and_no_internal_ids():
    page = _module("benchmark_page").page(ROOT)
    sections = re.split(r"\n### ", page)[1:]
    assert len(sections) >= 10
    for section in sections:
        assert "*Measured 20" in section, section[:80]
    # the page's figures hold long decimals (a searched learning rate): a revision id here has a letter in it
    internal = {**INTERNAL, "a bare commit hash": r"\b(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}\b"}
    for what, pattern in internal.items():
        assert not re.search(pattern, page, flags=re.IGNORECASE if " " in pattern else 0), what
    assert not (ROOT / "docs" / "benchmarks.md").exists()  # generated at build time, never committed
    assert not (ROOT / "docs" / "reference" / "configuration.md").exists()
