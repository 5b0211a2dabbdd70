"""Generic modules name no algorithm and no env family: what a particular algorithm or environment needs lives in
its plugin (``rl/<algorithm>/``, ``rl/envs/``) behind the ``rlpipe.rl.algorithm.Algorithm`` contract.

What counts as naming: the words below as an identifier or a part of one (``sac_config``, ``SACConfig``,
``initial_ppo``), a module imported, an attribute, or a word of a string literal (``"jaxmarl:"``,
``f"{x}_imitation"``). What does not: comments and docstrings, which may explain with an example ("e.g. SAC's
temperature") without the code depending on it, as may a config field's ``doc=``; and ``rlpipe.rl.algorithm``'s ``REGISTRY`` table, the one place
where algorithms are named by design.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[1] / "src" / "rlpipe"
WORDS = frozenset({"sac", "ppo", "masac", "imitation", "recurrent", "gymnax", "gymnasium", "brax", "jaxmarl",
                   "mujoco"})
GENERIC = ("rl/training.py", "rl/loop.py", "rl/checkpoint.py", "rl/acting.py", "rl/mesh.py", "rl/algorithm.py",
           "rl/networks.py", "rl/buffer.py", "rl/normalization.py", "rl/run.py", "rl/training_run.py", "rl/chunk.py",
           "rl/seeds.py", "rl/schedule.py", "rl/agents.py", "rl/eval_tables.py", "rl/between_chunks.py",
           "rl/run_state.py", "pipeline_registry.py", "pipelines/training.py", "pipelines/project.py",
           "pipelines/evaluation.py", "pipelines/tuning.py", "pipelines/comparison.py", "pipelines/reports.py",
           *sorted(str(p.relative_to(SOURCE)) for p in (SOURCE / "rl" / "config").glob("*.py")),
           *sorted(str(p.relative_to(SOURCE)) for p in (SOURCE / "tracking").glob("*.py")),
           *sorted(str(p.relative_to(SOURCE)) for p in (SOURCE / "reporting").glob("*.py")))
NAMED_BY_DESIGN = {"rl/algorithm.py": "REGISTRY"}  # a module's table allowed to name algorithms



def words_of(text: str) -> set[str]:
    """The lower-case words of an identifier or a string: split at non-letters, underscores and camelCase."""
    parts = re.findall(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z]+|[A-Z]+", text)
    return {part.lower() for part in parts}


def docstrings(tree: ast.AST) -> set[int]:
    """The ids of the docstring constants of a module, its classes and functions, and of the strings of a config
    field's ``doc=`` (its documentation, shown in errors and the JSON Schemas)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.keyword) and node.arg == "doc":
            found |= {id(part) for part in ast.walk(node.value) if isinstance(part, ast.Constant)}
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                found.add(id(body[0].value))
    return found


def names_in(node: ast.AST, skip: set[int]) -> list[str]:
    """The identifiers and string literals a node itself holds (not its children's)."""
    if isinstance(node, ast.Name):
        return [node.id]
    if isinstance(node, ast.Attribute):
        return [node.attr]
    if isinstance(node, ast.arg):
        return [node.arg]
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.keyword):
        return [node.arg or ""]
    if isinstance(node, ast.alias):
        return [node.name, node.asname or ""]
    if isinstance(node, ast.ImportFrom):
        return [node.module or ""]
    if isinstance(node, (ast.Global, ast.Nonlocal)):
        return list(node.names)
    if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
        return [node.value]
    return []


def offending_lines(relative: str) -> list[str]:
    """``line: words`` of every line of a module that names an algorithm or env family (see the module doc)."""
    path = SOURCE / relative
    tree = ast.parse(path.read_text(), filename=str(path))
    skip = docstrings(tree)
    allowed: set[int] = set()
    table = NAMED_BY_DESIGN.get(relative)
    for node in ast.walk(tree):
        targets = node.targets if isinstance(node, ast.Assign) else [node.target] if isinstance(node, ast.AnnAssign) \
            else []
        if table and any(isinstance(t, ast.Name) and t.id == table for t in targets):
            allowed |= {id(child) for child in ast.walk(node)}
    hits: dict[int, set[str]] = {}
    for node in ast.walk(tree):
        if id(node) in allowed:
            continue
        for text in names_in(node, skip):
            found = words_of(text) & WORDS
            if found:
                hits.setdefault(getattr(node, "lineno", 0), set()).update(found)
    return [f"{relative}:{line}: {', '.join(sorted(words))}" for line, words in sorted(hits.items())]


def test_the_scan_finds_names_in_code_and_skips_docstrings_comments_and_the_registry(tmp_path, monkeypatch):
    module = tmp_path / "probe.py"
    module.write_text('"""About SAC and PPO."""\n'
                      "import rlpipe.rl.masac\n"
                      "REGISTRY = {'sac': 1}\n"
                      "def f(config):\n"
                      "    '''Only gymnax here.'''\n"
                      "    # brax in a comment\n"
                      "    return config.init_from_buffer or SACConfig\n"
                      "x = f'{1}_imitation'\n"
                      "y = 'jaxmarl:' if recurrentState else 'sacrifice'\n")
    monkeypatch.setattr(f"{__name__}.SOURCE", tmp_path)
    monkeypatch.setitem(NAMED_BY_DESIGN, "probe.py", "REGISTRY")
    assert offending_lines("probe.py") == ["probe.py:2: masac", "probe.py:7: sac", "probe.py:8: imitation",
                                           "probe.py:9: jaxmarl, recurrent"]


def test_every_generic_module_exists():
    assert all((SOURCE / relative).is_file() for relative in GENERIC)


@pytest.mark.parametrize("relative", GENERIC)
def test_a_generic_module_names_no_algorithm_and_no_env_family(relative):
    lines = offending_lines(relative)
    assert not lines, "names an algorithm or env family (move it behind the plugin contract):\n" + "\n".join(lines)


# ------------------------------------------------------------------------------------------------ the contract
def hook_discoveries(path: Path, hooks: set[str]) -> list[str]:
    """``file:line: hook`` of every ``getattr``/``hasattr`` of a module that asks an object for a hook by name."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("getattr", "hasattr") \
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) and node.args[1].value in hooks:
            found.append(f"{path.name}:{node.lineno}: {node.args[1].value}")
    return found


def test_no_module_discovers_a_hook_with_getattr():
    from rlpipe.rl.algorithm import Algorithm

    hooks = {name for name in vars(Algorithm) if not name.startswith("_")} | set(Algorithm.__annotations__)
    assert {"initial_device_data", "curve_panels", "metrics_of", "evaluation_metrics"} <= hooks
    modules = [*sorted(SOURCE.rglob("*.py")), *sorted(Path(__file__).resolve().parent.glob("*.py"))]
    found = [line for path in modules for line in hook_discoveries(path, hooks)]
    assert not found, "a hook is declared on Algorithm with its default: call it\n" + "\n".join(found)


def test_every_registered_algorithm_subclasses_the_base_under_its_name():
    from rlpipe.rl import algorithm as algorithms

    for name in algorithms.names():
        plugin = algorithms.get(name)
        assert isinstance(plugin, algorithms.Algorithm)
        assert plugin.name == name and plugin.config_class is algorithms.config_of(name)[0]


def test_the_base_gives_each_optional_hook_its_documented_default():
    from rlpipe.rl.algorithm import Algorithm, metric_names

    class Minimal(Algorithm):
        name, config_class, metric_names, inheritable = "minimal", object, ("loss",), {"params": ("params",)}

    minimal, device = Minimal(), {"envs": [1, 2]}
    assert minimal.metrics_of(None) == ("loss",) and metric_names(minimal, None) == ("loss",)
    assert minimal.evaluation_metrics(None, None) == ()
    assert minimal.initial_device_data(None, None, None, 0) is None
    assert minimal.env_steps_before_training(None) == 0
    assert minimal.redistribute_device_state(device, 2, 1) is device
    assert minimal.curve_panels == ((), ()) and minimal.progress_labels == ()
    with pytest.raises(ValueError, match="minimal policy acts on whole observations"):
        minimal.make_agent_policy({"algorithm": "minimal"})
    required = [lambda: minimal.steps_per_iteration(None), lambda: minimal.init_training_state(None, None, None),
                lambda: minimal.init_device_state(None, None, None, None, 1, None),
                lambda: minimal.make_iteration(None, None, 1), lambda: minimal.policy_meta(None, None),
                lambda: minimal.policy_params(None), lambda: minimal.make_policy({})]
    for call in required:
        with pytest.raises(NotImplementedError, match="Minimal"):
            call()
