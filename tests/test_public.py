"""The public surface: small namespaces, one for each concept, and the internals
in `odezoo.internal`, as equinox keeps `equinox.internal`."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Where each name went (old namespace, new namespace).
MOVED = {
    "odezoo.train": {
        "odezoo.metrics": [
            "ks_gaussian",
            "wasserstein1_gaussian",
            "wasserstein1_noise_floor",
            "GaussianMarginals",
            "evaluate_marginals",
            "forecast_errors",
            "series_metrics",
            "register_metrics",
            "evaluate",
        ],
        "odezoo.losses": [
            "mse",
            "cross_entropy",
            "huber",
            "nll",
            "get_loss",
            "elbo_loss",
            "forecast_mse",
            "series_cross_entropy",
            "series_mse",
            "penalised",
            "LossAux",
        ],
    },
    "odezoo": {
        "odezoo.internal": [
            "ErrorAccumulator",
            "EvaluationCount",
            "check_solution",
            "parse_adjoint",
        ]
    },
    "odezoo.nn": {"odezoo.internal": ["check_input", "CDEField", "CNFField", "DynamicsField"]},
    "odezoo.zoo": {
        "odezoo.internal": [
            "FIGURES",
            "fast_entries",
            "source_version",
            "tolerance_bound",
            "tolerance_from_spread",
            "read_tolerances",
            "write_card_tolerances",
        ]
    },
    "odezoo.bench": {"odezoo.internal": ["environment"]},
    "odezoo.config": {
        "odezoo.internal": ["model_key", "train_key", "parse_value", "CONFIG_VERSION"]
    },
}


def _exported(package: str) -> set[str]:
    """The names a package's `__init__` re-exports (`from X import NAME as NAME`, eager or
    under `if TYPE_CHECKING:`), or lists in `__all__`."""
    init = SRC / Path(*package.split(".")) / "__init__.py"
    tree = ast.parse(init.read_text())
    names = {
        a.asname
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for a in node.names
        if a.asname == a.name
    }
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(
            isinstance(t, ast.Name) and t.id == "__all__" for t in node.targets
        ):
            names |= set(ast.literal_eval(node.value))
    return names


def test_train_exports_at_most_twenty_names():
    names = _exported("odezoo.train")
    assert len(names) <= 20, sorted(names)
    assert {"fit", "TrainResult", "train_config", "Failure", "RunDir"} <= names


@pytest.mark.parametrize(
    ("old", "new", "name"),
    [(old, new, n) for old, moves in MOVED.items() for new, ns in moves.items() for n in ns],
)
def test_moved_names_live_in_their_new_namespace_only(old, new, name):
    assert name not in _exported(old)
    assert name in _exported(new)
    assert not hasattr(importlib.import_module(old), name)
    assert getattr(importlib.import_module(new), name) is not None


def test_no_name_is_public_twice_but_the_errors():
    # Beyond the top level's models and errors, each public name has one namespace.
    spaces = ["odezoo.nn", "odezoo.train", "odezoo.losses", "odezoo.metrics", "odezoo.zoo"]
    spaces += ["odezoo.bench", "odezoo.config", "odezoo.data", "odezoo.internal"]
    seen: dict[str, str] = {}
    for space in spaces:
        for name in _exported(space):
            if name.endswith("Error"):
                continue
            assert name not in seen, f"{name} in {seen.get(name)} and {space}"
            seen[name] = space


def test_lazy_exports_are_written_once():
    # A lazily exporting package lists each name once, in its `if TYPE_CHECKING:` block,
    # and reads the list from there (odezoo._lazy.type_checking_exports).
    lazy = []
    for init in sorted((SRC / "odezoo").rglob("__init__.py")):
        text = init.read_text()
        if "lazy_exports(" in text:
            lazy.append(init)
            assert "_EXPORTS = type_checking_exports(__file__)" in text, init
    assert len(lazy) >= 4, lazy


def test_no_module_in_src_is_over_600_lines():
    # One concept per file: a module past 600 lines is holding several.
    src = Path(__file__).resolve().parents[1] / "src" / "odezoo"
    long = {
        str(p.relative_to(src)): n
        for p in src.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > 600
    }
    assert not long, long
