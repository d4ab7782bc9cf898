"""The documentation's code runs as written: the tutorial page, and every ```python example
in the docstrings of `src/odezoo` (which mkdocstrings publishes in the API reference).

Each docstring example runs in a fresh namespace, in a temporary working directory, so it
must import what it uses, exactly as a reader copying it would have to. An example written
as a doctest (`>>>` prompts) runs through `doctest`, so its printed outputs are checked too.
"""

from __future__ import annotations

import ast
import doctest
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import jax
import matplotlib
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SRC = ROOT / "src" / "odezoo"

# A fenced block inside a docstring: "```python" ... "```", at any (common) indentation.
_BLOCK = re.compile(r"^([ \t]*)```python[ \t]*\n(.*?)^\1```", flags=re.S | re.M)


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _docstrings(path: Path):
    """Yield (qualified name, docstring) for the module and every class and function in it."""
    tree = ast.parse(path.read_text(), filename=str(path))
    module = _module_name(path)

    def walk(node, prefix):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}.{child.name}"
                doc = ast.get_docstring(child, clean=True)
                if doc:
                    yield name, doc
                yield from walk(child, name)

    doc = ast.get_docstring(tree, clean=True)
    if doc:
        yield module, doc
    yield from walk(tree, module)


def _examples() -> list[tuple[str, str]]:
    found = []
    for path in sorted(SRC.rglob("*.py")):
        for name, doc in _docstrings(path):
            blocks = [textwrap.dedent(m.group(2)) for m in _BLOCK.finditer(doc)]
            for i, code in enumerate(blocks):
                found.append((name if len(blocks) == 1 else f"{name}[{i}]", code))
    return found


EXAMPLES = _examples()

# Examples that fail because of the code they document, not their own text; strict, so
# each entry fails the suite as soon as the code is fixed, and must then be removed here.
KNOWN_BROKEN: dict[str, str] = {}

# Examples that change process-wide state (equinox's error mode, JAX's compilation cache)
# run in a fresh interpreter, so that they cannot change what later tests see.
OWN_PROCESS = {
    "odezoo.train._cache.errors_as_nan",
    "odezoo.train._cache.enable_compilation_cache",
}


def _params():
    for name, code in EXAMPLES:
        marks = []
        if name in KNOWN_BROKEN:
            marks = [pytest.mark.xfail(reason=KNOWN_BROKEN[name], strict=True)]
        yield pytest.param(name, code, id=name, marks=marks)


def test_docstring_examples_are_collected():
    # Guards the collector itself: if the regex or the walk broke, every example would
    # silently vanish from the parametrized test below.
    assert len(EXAMPLES) >= 50, len(EXAMPLES)


@pytest.mark.parametrize(("name", "code"), list(_params()))
def test_docstring_example_runs(name, code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples that write files (run directories, checkpoints)
    matplotlib.use("Agg")
    # Examples that register a model family or dataset leave no trace for other tests.
    from odezoo.config import _data, _models

    monkeypatch.setattr(_models, "MODEL_FAMILIES", dict(_models.MODEL_FAMILIES))
    monkeypatch.setattr(_data, "DATA_BUILDERS", dict(_data.DATA_BUILDERS))
    if name in OWN_PROCESS:
        env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path), HOME=str(tmp_path))
        env["PYTHONPATH"] = os.pathsep.join([str(SRC.parent), env.get("PYTHONPATH", "")])
        done = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, done.stderr
        return
    namespace: dict = {"__name__": "__docs__"}
    if re.search(r"^>>> ", code, flags=re.M):
        test = doctest.DocTestParser().get_doctest(code, namespace, name, None, 0)
        runner = doctest.DocTestRunner(
            optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
        )
        report: list[str] = []
        runner.run(test, out=report.append, clear_globs=False)
        assert runner.failures == 0, "".join(report)
    else:
        exec(compile(code, f"<docstring of {name}>", "exec"), namespace)


@pytest.mark.slow
def test_tutorial_code_blocks_run():
    text = (DOCS / "tutorial.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 5
    namespace: dict = {}
    exec(compile("\n".join(blocks), "tutorial.md", "exec"), namespace)
    assert namespace["traj"].shape == (200, 10, 1)


@pytest.mark.slow
def test_flax_page_code_blocks_run(tmp_path, monkeypatch):
    """The Flax page: an NNX module in `fit`, an `nnx.Optimizer` loop, and the seed
    chapter's own functions on odezoo, writing the page's two figures."""
    monkeypatch.chdir(tmp_path)
    matplotlib.use("Agg")
    text = (DOCS / "flax.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 3
    namespace: dict = {}
    # The page's nnx.Optimizer runs optax's update outside `fit`, which mixes dtypes that
    # the suite's strict promotion refuses (train/_step.py: the same exception for `fit`).
    with jax.numpy_dtype_promotion("standard"):
        exec(compile("\n".join(blocks), "flax.md", "exec"), namespace)
    assert namespace["trajectories"].shape == (200, 100, 1)
    params = namespace["odenet"].dynamics.params
    assert [tuple(w.shape) for w, _ in params] == [(2, 20), (20, 1)]
    for figure in ("seed-predictions.png", "seed-trajectories.png"):
        assert (tmp_path / figure).stat().st_size > 0
        assert (DOCS / "flax" / figure).is_file()


def test_zoo_cards_link_other_entries_and_print_no_none():
    """The committed cards, as the renderer writes them: an entry named in a card links to
    that entry's card, and a model without an ODE solve prints no 'NFE None / None'."""
    from odezoo.zoo._card import render_card

    zoo = ROOT / "zoo"
    names = {d.name for d in zoo.iterdir() if (d / "config.json").is_file()}
    for card in sorted(zoo.glob("*/card.md")):
        text = card.read_text()
        assert "None" not in text, card
        for other in re.findall(r"(?<![\[\w])`([a-z0-9][a-z0-9-]*)`(?![\]\w])", text):
            assert other not in names or other == card.parent.name, (card, other)
        for other in re.findall(r"\]\(\.\./([a-z0-9-]+)/card\.md\)", text):
            assert (zoo / other / "card.md").is_file(), (card, other)
    metrics = {
        "metrics": {"loss": 0.5},
        "parameters": 10,
        "hardware": "cpu",
        "training": {"steps": 1, "nfe_forward_final": None, "nfe_backward_final": None},
    }
    cfg = {"description": "like `seed-cubic-odenet`", "meta": {"card": {}}}
    text = render_card("seed-cubic-resnet", cfg, metrics, [])
    assert "None / None" not in text and "No ODE solve" in text
    assert "[`seed-cubic-odenet`](../seed-cubic-odenet/card.md)" in text


@pytest.mark.slow
def test_series_page_code_blocks_run():
    text = (DOCS / "series.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 4
    namespace: dict = {}
    exec(compile("\n".join(blocks), "series.md", "exec"), namespace)
    assert namespace["forecast"].shape == (4, 50, 1)
    assert {"interp_mse", "extrap_mse", "nfe_forward"} <= set(namespace["metrics"])
