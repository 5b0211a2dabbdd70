"""docs/adding-an-algorithm.md, followed literally in a scratch copy of the project: its commands (with ``<name>``
= ``toyppo``, a copy of PPO) make the algorithm, its training and evaluation pipelines run, and nothing but the
plugin's folder, the registry and the parameter file changes."""

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import PROJECT_ROOT
from tests.test_ppo import TINY_PPO

NAME = "toyppo"
GUIDE = PROJECT_ROOT / "docs" / "adding-an-algorithm.md"
KEDRO = Path(sys.executable).with_name("kedro")


def guide_blocks() -> list[tuple[str, str]]:
    """The guide's fenced code blocks, in order: (language, text with ``<name>`` filled in)."""
    blocks = re.findall(r"^```(\w+)\n(.*?)^```", GUIDE.read_text(), flags=re.M | re.S)
    return [(language, text.replace("<name>", NAME)) for language, text in blocks]


def commands(text: str) -> list[str]:
    """The shell commands of a block, one a line, without their trailing comments."""
    lines = (re.sub(r"(^|\s+)#.*$", "", line).strip() for line in text.splitlines())
    return [line for line in lines if line]


def shell(root: Path, command: str) -> subprocess.CompletedProcess:
    """``command`` in the scratch project, its own ``src`` first on the path (the copy, not the installed one)."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1",
           "PYTHONPATH": os.pathsep.join([str(root / "src"), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "PATH": os.pathsep.join([str(KEDRO.parent), os.environ.get("PATH", "")])}
    return subprocess.run(["bash", "-c", command], cwd=root, env=env, capture_output=True, text=True, timeout=900)


def fingerprint(root: Path) -> dict[str, str]:
    """Every project file a user edits (the package and the shared config; conf/local is the user's own) by hash."""
    files = [p for p in [*(root / "src").rglob("*"), *(root / "conf").rglob("*")]
             if p.is_file() and "__pycache__" not in p.parts and not p.is_relative_to(root / "conf" / "local")]
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}


def add_registry_line(root: Path, line: str) -> None:
    """Step 2: the guide's line, added as the last entry of ``REGISTRY``."""
    path = root / "src" / "rlpipe" / "rl" / "algorithm.py"
    text = path.read_text()
    head, opening, rest = text.partition("REGISTRY: dict[str, Plugin] = {\n")
    assert opening, "rl/algorithm.py has no REGISTRY table"
    entries, closing, tail = rest.partition("}\n")
    path.write_text(head + opening + entries + line.rstrip("\n") + "\n" + closing + tail)


def versions(root: Path, rel: str) -> list[str]:
    folder = root / rel
    return sorted(p.name for p in folder.iterdir() if (p / folder.name).exists()) if folder.is_dir() else []


@pytest.mark.slow
def test_the_guide_adds_an_algorithm_that_touches_only_its_folder_registry_line_and_parameter_file(project):
    shutil.copytree(PROJECT_ROOT / "src" / "rlpipe", project / "src" / "rlpipe",
                    ignore=shutil.ignore_patterns("__pycache__"))
    before = fingerprint(project)
    (folder_block, registry_block, parameters_block, run_block) = [b for b in guide_blocks()
                                                                    if b[0] in ("bash", "python")][:4]
    assert [b[0] for b in (folder_block, registry_block, parameters_block, run_block)] == \
        ["bash", "python", "bash", "bash"], "the guide's steps are no longer four code blocks in this order"

    for command in commands(folder_block[1]) + commands(parameters_block[1]):  # steps 1 and 3
        done = shell(project, command)
        assert done.returncode == 0, (command, done.stderr[-2000:])
    add_registry_line(project, registry_block[1])  # step 2

    after = fingerprint(project)
    changed = {path for path in set(before) | set(after) if before.get(path) != after.get(path)}
    plugin = f"src/rlpipe/rl/{NAME}/"
    assert {p for p in changed if not p.startswith(plugin)} == {"src/rlpipe/rl/algorithm.py",
                                                                f"conf/base/parameters_{NAME}.yml"}
    assert {p.removeprefix(plugin) for p in changed if p.startswith(plugin)} == \
        {p.name for p in (PROJECT_ROOT / "src/rlpipe/rl/ppo").glob("*.py")}
    parameters = yaml.safe_load((project / f"conf/base/parameters_{NAME}.yml").read_text())
    assert list(parameters) == [NAME]

    # a tiny budget in the user's own local config (not a project file): the guide's runs, as written
    (project / "conf" / "local" / f"parameters_{NAME}.yml").write_text(yaml.safe_dump({NAME: TINY_PPO}))
    runs = commands(run_block[1])
    assert runs[:3] == [f"kedro run --pipelines={NAME}", f"kedro run --pipelines={NAME}_eval",
                        "kedro registry list"], runs
    for command in runs:
        done = shell(project, command)
        assert done.returncode == 0, (command, (done.stdout + done.stderr)[-4000:])
        if command.startswith("kedro registry list"):
            assert {f"- {NAME}", f"- {NAME}_eval", f"- {NAME}_tune"} <= set(done.stdout.splitlines()), done.stdout

    agent = versions(project, f"data/06_models/{NAME}/agent")
    assert len(agent) == 1
    assert len(versions(project, f"data/06_models/{NAME}/policy")) == 1
    stored = json.loads(next((project / f"data/06_models/{NAME}/policy").rglob("policy.json")).read_text())
    assert stored["algorithm"] == NAME
    trained = json.loads(next((project / f"data/07_model_output/{NAME}/eval_summary.json").rglob("*.json"))
                         .read_text())
    evaluated = json.loads(next((project / f"data/07_model_output/{NAME}_eval/eval_summary.json").rglob("*.json"))
                           .read_text())
    assert evaluated["agent_version"] == agent[0]
    assert evaluated["return_mean"] == trained["return_mean"]  # its own scenarios: the training run's evaluation
    assert fingerprint(project) == after  # running changed no project file
