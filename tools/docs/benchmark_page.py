"""The benchmark page, generated at docs build time from benchmarks/results/*.json.

Each measurement is shown once, from the newest results file that holds it, with that file's date and machine:
comparisons at identical hyperparameters first, then each side with its own tuned settings, then rlpipe's own
measurements, then every target with its latest measurement. The tables are rendered by `benchmarks/run.py`'s own
report code, so the page says exactly what `make bench` printed; only the section names and the revision ids of
its before/after baselines are rewritten for readers.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from typing import Any

LIKE_FOR_LIKE = (("2", "SAC throughput at identical hyperparameters"),
                 ("8", "Any environment: SAC on HalfCheetah-v5 against Stable-Baselines3, Gymnasium against gymnax"))
TUNED = (("1", "SAC on Pendulum-v1: time to an eval return of −200"),
         ("3", "PPO on CartPole-v1: time to an eval return of 475"),
         ("13", "Many agents: multi-agent SAC against JaxMARL's IPPO"))
OURS_ALONE = (("4", "Compilation and the JAX cache"),
              ("7", "First contact: whole `kedro run` processes"),
              ("5", "Scaling over envs and devices"),
              ("6", "Many processes"),
              ("9", "Many seeds in one program, and a search"),
              ("10", "Memory: recurrent PPO on partially observable tasks"),
              ("11", "Full-resolution training histories"),
              ("12", "Curriculum and imitation"))
# a revision id as a word: hex digits with at least one letter and one digit (so no plain number matches)
REVISION = r"(?=[0-9a-f]*[a-f])(?=[0-9a-f]*\d)[0-9a-f]{7,40}"


def _load_report(root: Path, script: str = "run"):
    """benchmarks/<script>.py's `report` (standard library only at import, so loading it is cheap)."""
    spec = importlib.util.spec_from_file_location(f"rlpipe_benchmarks_{script}", root / "benchmarks" / f"{script}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.report


def _results(folder: Path) -> list[tuple[Path, dict[str, Any]]]:
    """Every `make bench` results file, oldest first (their names are their UTC start times)."""
    found = []
    for path in sorted(folder.glob("*.json")):
        data = json.loads(path.read_text())
        if isinstance(data, dict) and "cases" in data and "machine" in data:
            found.append((path, data))
    return found


def _reader_text(text: str) -> str:
    """The report's text for readers: no revision ids or internal references."""
    text = re.sub(rf"`{REVISION}` \({REVISION}(, )?", "an earlier revision (", text)
    text = re.sub(rf"\b{REVISION}'s\b", "the earlier revision's", text)
    text = re.sub(rf" @ {REVISION}\b", "", text)
    text = re.sub(rf"`{REVISION}`", "an earlier revision", text)
    text = re.sub(r" \(issue \d+, ", " (", text)
    return text


def machine_line(data: dict[str, Any]) -> str:
    """What a results file records of its machine."""
    m = data["machine"]
    return f"{m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}"


def _case(report, key: str, title: str, path: Path, data: dict[str, Any]) -> tuple[list[str], list[str]]:
    """One measurement's section and its target rows, from the report of that file's case alone."""
    alone = {"machine": data["machine"], "pairs": data["pairs"], "cases": {key: data["cases"][key]}}
    text = _reader_text(report(alone))
    body, _, targets = text.partition("\n## Targets\n")
    lines = body.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("## "))
    date = data["machine"]["date"][:16].replace("T", " ") + " UTC"
    section = [f"### {title}", "",
               f"*Measured {date} on {machine_line(data)}; {data['pairs']} pair(s) per comparison; results file "
               f"`benchmarks/results/{path.name}`.*", ""] + lines[start + 1:] + [""]
    rows = []
    for row in targets.splitlines():
        match = re.match(r"\| \d+: (.*) \| (yes|NO) \| (.*) \|$", row)
        if match:
            rows.append(f"| {match[1]} | {match[2]} | {match[3]} | {title}, {date[:10]} |")
    return section, rows


def _halfcheetah_seeds(folder: Path) -> list[str]:
    """The newest 10-seed HalfCheetah return comparison (benchmarks/halfcheetah_returns.py), if there is one."""
    files = sorted(folder.glob("*-halfcheetah-returns.json"))
    if not files:
        return []
    data = json.loads(files[-1].read_text())
    date = files[-1].name[:10]
    agg = data["aggregate"]

    def side(name: str, a: dict[str, Any]) -> str:
        return (f"| {name} | {a['runs']} | {a['mean']:,.0f} [{a['mean_ci_low']:,.0f}, {a['mean_ci_high']:,.0f}] | "
                f"{a['iqm']:,.0f} [{a['iqm_ci_low']:,.0f}, {a['iqm_ci_high']:,.0f}] | {a['min']:,.0f} | "
                f"{a['max']:,.0f} |")

    low, high = data["difference_ci"]
    verdict = ("not distinguishable from 0: ours is neither shown below SB3's nor above it" if low <= 0 <= high
               else "above 0" if low > 0 else "below 0")
    return ["### HalfCheetah-v5 eval return over 10 seeds per side", "",
            f"*Measured {date}; this results file records no machine; results file "
            f"`benchmarks/results/{files[-1].name}`.*", "",
            _reader_text(data.get("title", "")), "",
            f"SAC at identical hyperparameters (`conf/sac_halfcheetah`), eval return after {data['steps']:,} env "
            "steps, deterministic, 10 episodes per run; 95% bootstrap intervals.", "",
            "| | runs | mean [95% CI] | IQM [95% CI] | min | max |", "| --- | --- | --- | --- | --- | --- |",
            side("rlpipe", agg["ours"]), side("Stable-Baselines3", agg["sb3"]), "",
            f"Difference of the means, rlpipe − SB3: {data['difference_of_means']:+,.0f} [{low:+,.0f}, {high:+,.0f}], "
            f"{verdict}.", ""]


def _startup(root: Path) -> list[str]:
    """The newest breakdown of a whole `kedro run` of each algorithm (benchmarks/startup.py), rendered by that
    script's report."""
    newest: dict[str, tuple[Path, dict]] = {}
    for path in sorted((root / "benchmarks" / "results").glob("*-startup.json")):
        data = json.loads(path.read_text())
        newest[data["algo"]] = (path, data)
    if not newest:
        return []
    report = _load_report(root, "startup")
    lines = []
    for algo, (path, data) in newest.items():
        table = report(algo, data["summary"], data).split("\n", 2)[2]  # without its own title
        lines += [f"### Where the seconds of a `kedro run --pipelines={algo}` go", "",
                  f"*Measured {data['date'][:10]}; results file `benchmarks/results/{path.name}`.*", "",
                  "`benchmarks/startup.py`: the whole job cold and warm, the seconds before the run's first line, "
                  "each node, the imports, and the floors (importing JAX, a `kedro run` of the pipeline's first node "
                  "alone, and the same job through the library alone: its compiled training and its compiles).",
                  "", _reader_text(table), ""]
    return lines


def page(root: Path) -> str:
    folder = root / "benchmarks" / "results"
    report, results = _load_report(root), _results(folder)
    newest = {}
    for path, data in results:
        for key in data["cases"]:
            newest[key] = (path, data)
    lines = ["# Benchmarks", "",
             "Every figure here is generated when the site is built from the results files `make bench` writes "
             "(`benchmarks/results/*.json`); each measurement appears once, from its newest file, with its date and "
             "machine. Cells are medians (min–max) over pairs of runs, ours and the peer alternating in fresh "
             "processes; 'advantage' is the per-pair ratio in rlpipe's favour (theirs/ours for times, ours/theirs "
             "for rates). The CPU model is all a results file records of its machine, and machines of one model "
             "differed in speed: compare figures within a table, not across tables.", "",
             "Peers: Stable-Baselines3 and rejax in their own virtual environment (`.venv-peers`); what each peer "
             "script measures, with its hyperparameters and their sources, is in `benchmarks/peers/README.md`. "
             "Run them with `make bench` (about 70 minutes), or a part, e.g. "
             "`make bench BENCH_ARGS=\"--pairs 1 --cases 2,4\"`.", ""]
    all_targets = []
    for heading, intro, cases, extra in (
            ("Like for like: identical hyperparameters",
             "The same algorithm with the same hyperparameters on both sides: these compare the implementations.",
             LIKE_FOR_LIKE, _halfcheetah_seeds(folder)),
            ("Tuned against tuned: each side with its own settings",
             "Each side with its own tuned hyperparameters (rlpipe's defaults; the peers' from rl-baselines3-zoo, "
             "see benchmarks/peers/README.md), to the same target: these compare whole recipes, so their ratios are "
             "larger than the like-for-like ones and say less about the implementation.", TUNED, []),
            ("rlpipe's own measurements", "rlpipe against itself: compilation, scaling, and its features' costs.",
             OURS_ALONE, _startup(root))):
        lines += [f"## {heading}", "", intro, ""]
        for key, title in cases:
            if key in newest:
                section, rows = _case(report, key, title, *newest[key])
                lines += section
                all_targets += rows
        lines += extra
    lines += ["## Targets", "",
              "Each target with its latest measurement (the sections above); a target not met says NO.", "",
              "| target | met | measured | where, when |", "| --- | --- | --- | --- |"] + all_targets
    return "\n".join(lines) + "\n"
