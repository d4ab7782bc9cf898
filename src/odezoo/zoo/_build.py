"""Turning a training run into a zoo entry (weights, metrics, figures, card), checking an
entry's card against its shipped weights, and reproducing an entry's card by retraining it."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import numpy as np

from .._errors import CardMismatchError as CardMismatchError
from .._format import format_number
from ..nn import ODENet, count_parameters
from ..train._tolerance import solver_of
from . import _figures
from ._card_tolerance import floor, metrics_section, read_tolerances, tolerance_bound
from ._compare import refresh_dependents, sibling_section
from ._registry import CONFIG, WEIGHTS, config, entry_dir, load, names

METRICS = "metrics.json"
TRAINING_LOG = "training.jsonl"
CARD = "card.md"
DEFAULT_SWEEP = (1e-1, 1e-2, 1e-3, 1e-4, 1e-5, 1e-6)


def _card_meta(cfg: dict) -> dict:
    return dict((cfg.get("meta") or {}).get("card") or {})


def _eval_changes(cfg: dict) -> dict:
    """Solver changes for the card's headline metrics (e.g. a tighter tolerance)."""
    return dict(_card_meta(cfg).get("eval_solver") or {})


def evaluate(model, cfg: dict, **changes: Any) -> dict:
    """The entry's metrics on its held-out data (see `odezoo.config.build_evaluate`),
    with the solver changed as `changes` says."""
    from ..config import build_evaluate

    if changes:
        model = model.with_solver(**changes)
    return {k: _py(v) for k, v in build_evaluate(cfg)(model).items()}


def headline_metrics(name: str | os.PathLike, model=None) -> dict:
    """The metrics a card states: at the card's evaluation solver settings."""
    cfg = config(name)
    model = load(name) if model is None else model
    return evaluate(model, cfg, **_eval_changes(cfg))


def _py(v):
    if isinstance(v, jax.Array | np.ndarray | np.generic):
        v = v.item()
    if isinstance(v, float) and v.is_integer() and abs(v) < 2**31:
        return int(v)
    return v


def tolerance_sweep(model, cfg: dict, tolerances=DEFAULT_SWEEP) -> list[dict]:
    """The metrics at each test-time tolerance `rtol = atol = tol` (the seed's
    speed/precision trade, measured)."""
    rows = []
    for tol in tolerances:
        row = {"rtol": tol, "atol": tol}
        row.update(evaluate(model, cfg, rtol=tol, atol=tol))
        rows.append(row)
    return rows


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _hardware() -> str:
    devices = jax.devices()
    kind = devices[0].device_kind if devices else "unknown"
    return f"{platform.machine()} {kind}, {os.cpu_count()} cores, {jax.default_backend()}"


def source_version() -> dict:
    """The odezoo code that is running: `{"odezoo": __version__, "commit": ...,
    "modified": ...}`.

    `commit` is `git rev-parse HEAD` of the odezoo checkout this package is imported from,
    or `"unknown"` for an installed package (or when git is missing); `modified` says
    whether that checkout's `src/` has uncommitted changes (`None` when unknown). Zoo
    cards record it, so that a card that no longer reproduces can be traced to the code
    change that moved it.

    Example:

    ```python
    from odezoo.zoo import source_version

    print(source_version()["odezoo"])
    ```
    """
    from .. import __version__

    root = Path(__file__).resolve().parents[3]  # <repo>/src/odezoo/zoo/_build.py
    commit, modified = "unknown", None
    if (root / "pyproject.toml").is_file():

        def git(*args: str) -> str | None:
            try:
                done = subprocess.run(
                    ["git", *args], cwd=root, capture_output=True, text=True, timeout=30
                )
            except (OSError, subprocess.SubprocessError):
                return None
            return done.stdout.strip() if done.returncode == 0 else None

        top = git("rev-parse", "--show-toplevel")
        if top is not None and Path(top).resolve() == root:
            commit = git("rev-parse", "HEAD") or "unknown"
            status = git("status", "--porcelain", "--", "src")
            modified = None if status is None else bool(status)
    return {"odezoo": __version__, "commit": commit, "modified": modified}


def _describe_version(v: dict | None) -> str:
    if not v:
        return "not recorded (built before odezoo recorded it)"
    commit = v.get("commit", "unknown")
    text = f"odezoo {v.get('odezoo', 'unknown')}, commit {commit}"
    if v.get("modified"):
        text += " with uncommitted changes in src/"
    return text


@dataclasses.dataclass(frozen=True)
class FigureContext:
    """What a figure maker of [`register_figures`][odezoo.zoo.register_figures] gets.

    Fields:

    - `name`: the entry.
    - `cfg`: its normalised config.
    - `data`: its [`DataBundle`][odezoo.config.DataBundle] (training and held-out data).
    - `model`: the trained model.
    - `folder`: the entry's folder, where the figures go.
    """

    name: str
    cfg: Any
    data: Any
    model: Any
    folder: Path

    @property
    def meta(self) -> dict:
        """The config's `meta.card`."""
        return _card_meta(self.cfg)


FigureMaker = Callable[[FigureContext], list[tuple[str, str]]]
FIGURES: dict[str, FigureMaker] = {}


def register_figures(data_name: str, maker: FigureMaker, *, replace: bool = False) -> None:
    """Draw `maker`'s figures on the cards of the entries whose `data.name` is
    `data_name`: the figures follow from an entry's data, never from its name.

    Arguments:

    - `data_name`: a dataset of the config's data registry.
    - `maker`: `maker(context) -> [(file, caption), ...]`, given a
      [`FigureContext`][odezoo.zoo.FigureContext]; it saves each file in
      `context.folder`.
    - `replace`: replace an existing registration.

    Example:

    ```python
    from odezoo.zoo import FIGURES, register_figures

    def no_figures(context):
        return []

    old = FIGURES["cubic"]
    register_figures("cubic", no_figures, replace=True)
    register_figures("cubic", old, replace=True)          # as it was
    ```
    """
    if data_name in FIGURES and not replace:
        raise ValueError(
            f"figures for data {data_name!r} are registered already; pass replace=True"
        )
    FIGURES[data_name] = maker


def _figures_for(name: str, cfg: dict, model, folder: Path) -> list[tuple[str, str]]:
    """Draw the figures the entry's data calls for; returns (file, caption) pairs."""
    from ..config import build_data, full_config

    cfg_full = full_config(cfg)
    maker = FIGURES.get(cfg_full["data"]["name"])
    if maker is None:
        return []
    return maker(FigureContext(name, cfg_full, build_data(cfg_full), model, folder))


def _cubic_figures(c: FigureContext) -> list[tuple[str, str]]:
    x, y = c.data.train
    models = {c.name: c.model}
    for other in c.meta.get("compare_with", []):
        try:
            models[other] = load(other)
        except (FileNotFoundError, KeyError):
            pass
    _figures.seed_figure(models, x, y, c.folder / "predictions.png")
    out = [("predictions.png", "Data (green) and predictions on [-3, 3].")]
    if isinstance(c.model, ODENet):
        _figures.trajectory_figure(c.model, x, c.folder / "trajectories.png")
        out.append(("trajectories.png", "Activation trajectories over time / depth."))
    return out


def _spheres_figures(c: FigureContext) -> list[tuple[str, str]]:
    x, y = c.data.test
    _figures.spheres_figure(c.model, x, y, c.folder / "flow.png", title=c.name)
    flow = ("flow.png", "Learned flow of test points and decision function.")
    return [flow, _training_comparison(c)]


def _training_comparison(c: FigureContext) -> tuple[str, str]:
    """The entry's training loss and NFE beside those of the entries it is compared
    with (`meta.card.compare_with`)."""
    runs = {c.name: _read_jsonl(c.folder / TRAINING_LOG)}
    for other in c.meta.get("compare_with", []):
        log = entry_dir(other) / TRAINING_LOG
        if log.is_file():
            runs[other] = _read_jsonl(log)
    _figures.compare_training_figure(runs, c.folder / "loss_nfe.png")
    return ("loss_nfe.png", "Training loss and forward NFE, side by side.")


def _toy2d_figures(c: FigureContext) -> list[tuple[str, str]]:
    from ..data import toy2d

    sample = toy2d(c.cfg["data"]["density"], 5000, key=jax.random.key(1))
    _figures.density_figure(c.model, sample, c.folder / "density.png", title=c.name)
    return [("density.png", "Data, learned density and model samples.")]


register_figures("cubic", _cubic_figures)
register_figures("spheres", _spheres_figures)
register_figures("toy2d", _toy2d_figures)
# -- the latent ODE's forecasting data ------------------------------------------------------


def _periodic_figures(c: FigureContext) -> list[tuple[str, str]]:
    _figures.forecast_figure(c.model, c.data.test, c.folder / "forecasts.png", title=c.name)
    return [
        (
            "forecasts.png",
            "Held-out series: the observations the model saw (black; the dashed line ends "
            "the observed window), the held-out values (grey), the forecast (red) and, for a "
            "latent model, the trajectories of 10 draws of z0 from the posterior (thin blue, "
            "over the forecast: where the posterior is narrow, they coincide with it).",
        )
    ]


def _spirals_figures(c: FigureContext) -> list[tuple[str, str]]:
    _figures.spiral_figure(c.model, c.data.test, c.folder / "spirals.png", title=c.name)
    return [
        (
            "spirals.png",
            "Held-out spirals: the true spiral (grey), the observations the model saw "
            "(black), its reconstruction over the observed window (blue) and its "
            "extrapolation beyond it (red), as in Chen et al. 2018's latent ODE figure.",
        )
    ]


register_figures("periodic", _periodic_figures)
register_figures("spirals", _spirals_figures)


# -- the neural CDE's classification data and the latent SDE's known law ----------------------


def _series_classification_figures(c: FigureContext) -> list[tuple[str, str]]:
    """A series classifier's figures: test series coloured by prediction, and its
    training loss and NFE beside those of the entries it is compared with."""
    _figures.series_classification_figure(
        c.model, c.data.test, c.folder / "predictions.png", title=c.name
    )
    shown = ("predictions.png", "Test series through their observed points, by predicted class.")
    return [shown, _training_comparison(c)]


def _ou_figures(c: FigureContext) -> list[tuple[str, str]]:
    """A learned SDE's sample paths and marginals against the exact Ornstein-Uhlenbeck
    law of its data section."""
    from ..data import ou_moments

    section = c.cfg["data"]
    law = {k: section[k] for k in ("theta", "mu", "sigma", "x0")}
    ts = np.linspace(0.0, section["t_max"], 101)
    paths = eqx.filter_jit(lambda m, k: m.sample(ts, 1000, key=k))(c.model, jax.random.key(1))
    mean, var = ou_moments(ts, **law)
    times, values, _ = c.data.train
    _figures.sde_paths_figure(
        np.asarray(paths)[..., 0], ts, mean, np.sqrt(var), c.folder / "paths.png",
        marginal_times=c.data.test.times,
        data=(np.asarray(times[0]), np.asarray(values[:30, :, 0])),
    )  # fmt: skip
    caption = (
        "Left: 30 sample paths of the learned prior SDE (blue), 30 training paths (grey), the "
        "exact mean and mean ± 2 sd; right: 1000 samples' histograms at the evaluation "
        "times against the exact Gaussian marginals."
    )
    return [("paths.png", caption)]


register_figures("spirals_classification", _series_classification_figures)
register_figures("ornstein_uhlenbeck", _ou_figures)


def build_entry(name: str, run_dir: str | os.PathLike, *, sweep: bool = True) -> dict:
    """Make zoo entry `name` from a finished training run: copy its weights and training
    log, evaluate the headline metrics and a tolerance sweep, draw the figures and
    write `metrics.json` and `card.md`.

    Arguments:

    - `name`: the entry (its `config.json` must already be in the zoo).
    - `run_dir`: the run directory `odezoo train name --out run_dir` wrote.
    - `sweep`: whether to run the test-time tolerance sweep (ODE models).

    Returns:

    The entry's `metrics.json` as a dict.
    """
    folder = entry_dir(name)
    # A rebuilt entry keeps the tolerances its card states (measured for its recipe by
    # benchmarks/isa_spread.py; rerun it after a rebuild that changes the recipe).
    previous = read_tolerances(name) if (folder / METRICS).is_file() else {}
    run = Path(run_dir)
    run_cfg = json.loads((run / CONFIG).read_text())
    entry_cfg = config(name)
    for section in ("model",):
        if run_cfg.get(section, {}) != _filled(entry_cfg, section):
            raise ValueError(
                f"run {run} was trained with a different {section} section than entry {name}"
            )
    shutil.copyfile(run / WEIGHTS, folder / WEIGHTS)
    shutil.copyfile(run / "metrics.jsonl", folder / TRAINING_LOG)
    summary = json.loads((run / METRICS).read_text())
    model = load(name)
    metrics: dict[str, Any] = {
        "entry": name,
        "metrics": headline_metrics(name, model),
        "eval_solver": solver_of(model.with_solver(**_eval_changes(entry_cfg))).to_config()
        if solver_of(model) is not None
        else None,
        "parameters": count_parameters(model),
        "training": {
            k: summary.get(k)
            for k in (
                "steps",
                "final_loss",
                "compile_time_s",
                "step_time_median_s",
                "total_time_s",
                "nfe_forward_final",
                "nfe_backward_final",
                "jax_version",
                "backend",
            )
        },
        "hardware": _hardware(),
        "built_with": source_version(),
    }
    # A new metric gets the least tolerance a card allows until
    # benchmarks/isa_spread.py measures how far it moves.
    metrics["tolerances"] = {k: previous.get(k) or floor(k) for k in metrics["metrics"]}
    # The sweep trades accuracy for forward NFE: it needs an evaluation that counts them
    # (a sampling SDE compared with a known law does not, and steps at a fixed dt0).
    if sweep and solver_of(model) is not None and "nfe_forward" in metrics["metrics"]:
        metrics["tolerance_sweep"] = tolerance_sweep(model, entry_cfg)
    else:
        (folder / "tolerance.png").unlink(missing_ok=True)
    (folder / METRICS).write_text(json.dumps(metrics, indent=2) + "\n")
    figures = _figures_for(name, entry_cfg, model, folder)
    if "tolerance_sweep" in metrics:
        target = (_card_meta(entry_cfg).get("target") or {}).get("metric")
        key = next(k for k in (target, "accuracy", "loss") if k in metrics["metrics"])
        _figures.tolerance_figure(metrics["tolerance_sweep"], key, folder / "tolerance.png")
        figures.append(("tolerance.png", f"Test {key} against forward NFE as rtol = atol loosen."))
    (folder / CARD).write_text(render_card(name, entry_cfg, metrics, figures))
    refresh_dependents(name)  # regularised entries' cards compare themselves with this one
    return metrics


def _filled(cfg: dict, section: str) -> dict:
    from ..config import full_config

    return full_config(cfg).get(section, {})


def _link_entries(text: str, name: str, entries: set[str]) -> str:
    """Turn every other zoo entry named in backticks into a link to its card (a path
    relative to this card, `../OTHER/card.md`; the docs hook maps it to the site's page)."""

    def link(match: re.Match) -> str:
        other = match.group(1)
        if other == name or other not in entries:
            return match.group(0)
        return f"[`{other}`](../{other}/card.md)"

    return re.sub(r"(?<![\[\w])`([a-z0-9][a-z0-9-]*)`(?![\]\w])", link, text)


def render_card(name: str, cfg: dict, metrics: dict, figures: list[tuple[str, str]]) -> str:
    """The model card, in markdown, from the entry's config and measured metrics."""
    meta = _card_meta(cfg)
    m = metrics["metrics"]
    t = metrics["training"]
    entries = set(names())
    linked = lambda text: _link_entries(text, name, entries)
    lines = [f"# {name}", "", linked(cfg.get("description", "")), ""]
    if meta.get("reproduces"):
        lines += ["## What it reproduces", "", linked(meta["reproduces"]), ""]
    lines += ["## Metrics", ""]
    solver = metrics.get("eval_solver")
    if solver:
        lines.append(
            f"Measured on the held-out data with {solver['solver']} at "
            f"rtol={solver['rtol']:g}, atol={solver['atol']:g}:"
        )
        lines.append("")
    lines += metrics_section(metrics)
    lines.append("")
    target = meta.get("target")
    if target:
        value = m[target["metric"]]
        ok = value <= target["max"] if "max" in target else value >= target["min"]
        bound = f"<= {target['max']:g}" if "max" in target else f">= {target['min']:g}"
        verdict = "reached" if ok else "**not reached**"
        lines += [
            f"Target: {target['metric']} {bound} ({target.get('why', '')}): {verdict}, "
            f"measured {format_number(value)}.",
            "",
        ]
    if meta.get("notes"):
        lines += [linked(meta["notes"]), ""]
    others = [o for o in meta.get("compare_with", []) if o in entries and o != name]
    if others:
        lines += ["Compare with: " + ", ".join(linked(f"`{o}`") for o in others) + ".", ""]
    lines += sibling_section(name, cfg, metrics)
    lines += [
        "## Training",
        "",
        f"- Steps: {t.get('steps')}, final training loss {format_number(t.get('final_loss'))}.",
    ]
    if t.get("nfe_forward_final") is None and t.get("nfe_backward_final") is None:
        lines.append("- No ODE solve, so no function evaluations (NFE) to report.")
    else:
        lines.append(
            f"- Forward / backward NFE at the end of training: {t.get('nfe_forward_final')} / "
            f"{t.get('nfe_backward_final')}."
        )
    lines += [
        f"- Time: {format_number(t.get('total_time_s'))} s in all, "
        f"compile {format_number(t.get('compile_time_s'))} s, "
        f"median step {format_number(t.get('step_time_median_s'))} s.",
        f"- Hardware: {metrics['hardware']} (jax {t.get('jax_version')}). "
        + (meta.get("hardware_note") or ""),
        f"- Built with: {_describe_version(metrics.get('built_with'))}.",
        "",
        "Reproduce with:",
        "",
        "```bash",
        f"odezoo train {name} --out runs/{name}",
        f"odezoo zoo build {name} runs/{name}",
        "```",
        "",
        f"Check the shipped weights against this card: `odezoo eval {name} --check`. "
        f"Retrain in a temporary folder and compare with this card: "
        f"`odezoo zoo reproduce {name}`"
        + (" (CI does, on every run)." if meta.get("reproduce_in_ci") else "."),
        "",
    ]
    sweep = metrics.get("tolerance_sweep")
    if sweep:
        rest = [k for k in sweep[0] if k not in ("rtol", "atol", "nfe_forward", "accuracy")]
        keys = [k for k in ("accuracy", *rest) if k in sweep[0]]
        lines += [
            "## Test-time tolerance",
            "",
            "The same weights evaluated as the solver's tolerance loosens:",
            "",
            "| rtol = atol | " + " | ".join(keys) + " | forward NFE |",
            "|---|" + "---|" * (len(keys) + 1),
        ]
        for row in sweep:
            vals = " | ".join(format_number(row[k]) for k in keys)
            lines.append(f"| {row['rtol']:g} | {vals} | {format_number(row['nfe_forward'])} |")
        lines.append("")
    if figures:
        lines += ["## Figures", ""]
        for file, caption in figures:
            lines += [f"![{caption}]({file})", "", caption, ""]
    return "\n".join(lines).rstrip() + "\n"


@dataclasses.dataclass(frozen=True)
class CardCheck:
    """What [`check_entry`][odezoo.zoo.check_entry] found.

    Fields:

    - `name`: the entry.
    - `stated`: the card's metrics (`metrics.json`).
    - `measured`: the metrics recomputed from the shipped weights.
    - `bounds`: for each card metric, the largest `|measured - stated|` its tolerance
      accepts.
    """

    name: str
    stated: dict
    measured: dict
    bounds: dict

    def failures(self) -> list[str]:
        """The metrics outside their tolerance, one phrase each."""
        bad = []
        for key, want in self.stated.items():
            got = self.measured.get(key)
            if got is None:
                bad.append(f"{key}: card says {format_number(want)}, not measured")
            elif not _within(got, want, self.bounds[key]):
                bad.append(
                    f"{key}: card says {format_number(want)}, weights give "
                    f"{format_number(got)} (tolerance ±{format_number(self.bounds[key])})"
                )
        return bad

    @property
    def ok(self) -> bool:
        return not self.failures()

    def __str__(self) -> str:
        parts = [
            f"{k} {format_number(self.measured.get(k))} (card {format_number(v)} "
            f"±{format_number(self.bounds[k])})"
            for k, v in self.stated.items()
        ]
        return f"{'ok  ' if self.ok else 'FAIL'} {self.name}: " + ", ".join(parts)


def check_entry(name: str, *, throw: bool = True) -> CardCheck:
    """Recompute an entry's headline metrics from its shipped weights and compare each
    with its card's value, within the tolerance the card states for it
    (`metrics.json`'s `tolerances`; see `odezoo.zoo.tolerance_bound`).

    Arguments:

    - `name`: a zoo entry with shipped weights and a card.
    - `throw`: whether a metric outside its tolerance raises
      [`CardMismatchError`][odezoo.zoo.CardMismatchError] (naming each such metric,
      with both values and the tolerance). With `throw=False` the result says so
      instead (`.ok`, `.failures()`).

    Returns a [`CardCheck`][odezoo.zoo.CardCheck]; `str()` of it is one line with each
    metric's recomputed value, the card's value and its tolerance.

    Example:

    ```python
    from odezoo.zoo import check_entry

    print(check_entry("seed-cubic-resnet"))
    ```
    """
    folder = entry_dir(name)
    stated = json.loads((folder / METRICS).read_text())["metrics"]
    tolerances = read_tolerances(name)
    bounds = {k: tolerance_bound(v, tolerances[k]) for k, v in stated.items()}
    result = CardCheck(name, stated, headline_metrics(name), bounds)
    bad = result.failures()
    if bad and throw:
        raise CardMismatchError(f"zoo entry {name!r} disagrees with its card: " + "; ".join(bad))
    return result


# A retrained entry must agree with its card within these bounds: relative for losses and
# forward NFE, absolute for accuracies (see `reproduce_entry`).
REPRODUCE_RTOL = {"loss": 0.05, "nfe_forward": 0.25}
REPRODUCE_ATOL = {"accuracy": 0.005}
# Metrics not listed above: this relative tolerance.
REPRODUCE_DEFAULT_RTOL = 0.05


@dataclasses.dataclass(frozen=True)
class Reproduction:
    """What [`reproduce_entry`][odezoo.zoo.reproduce_entry] found.

    Fields:

    - `name`: the entry.
    - `reproduced`: whether every card metric was measured again within its bound.
    - `stated`: the card's metrics (`metrics.json`).
    - `measured`: the retrained model's metrics, at the card's evaluation settings
      (empty when training failed).
    - `bounds`: for each card metric, the largest `|measured - stated|` accepted.
    - `seconds`: wall time of the retraining and evaluation.
    - `card_version`: the odezoo version and commit that built the card (`None` for a
      card built before odezoo recorded it).
    - `version`: the odezoo version and commit that retrained it now.
    - `error`: why training failed, or `None`.
    """

    name: str
    reproduced: bool
    stated: dict
    measured: dict
    bounds: dict
    seconds: float
    card_version: dict | None
    version: dict
    error: str | None = None

    def __str__(self) -> str:
        verdict = "reproduced" if self.reproduced else "NOT reproduced"
        if self.error is not None:
            return f"{verdict} {self.name}: retraining failed: {self.error}"
        parts = []
        for key, want in self.stated.items():
            got = self.measured.get(key)
            if got is None:
                parts.append(f"{key} not measured (card {format_number(want)})")
                continue
            bound = self.bounds[key]
            ok = _within(got, want, bound)
            parts.append(
                f"{key} {format_number(got)} vs card {format_number(want)} "
                f"(|diff| {format_number(abs(got - want))} {'<=' if ok else '>'} "
                f"{format_number(bound)})"
            )
        return (
            f"{verdict} {self.name}: "
            + ", ".join(parts)
            + f"; retrained in {self.seconds:.0f} s with {_describe_version(self.version)}"
            + f"; card built with {_describe_version(self.card_version)}"
        )


def _within(got, want, bound: float) -> bool:
    return got is not None and math.isfinite(got) and abs(got - want) <= bound


def _bound(key: str, want: float, tolerance: float | None, entry_rtol: dict) -> float:
    atol = REPRODUCE_ATOL.get(key, 0.0)
    if tolerance is not None:
        return tolerance * abs(want) + atol
    default = 0.0 if key in REPRODUCE_ATOL else REPRODUCE_DEFAULT_RTOL
    rtol = entry_rtol.get(key, REPRODUCE_RTOL.get(key, default))
    return rtol * abs(want) + atol


def _train_command(name: str, out: Path) -> list[str]:
    """The card's `odezoo train NAME --out DIR`, run by this Python in a fresh process
    (the odezoo that is imported here, the zoo search path of this process)."""
    return [
        sys.executable,
        "-c",
        "import sys; from odezoo.cli import main; sys.exit(main(sys.argv[1:]))",
        "train",
        name,
        "--out",
        str(out),
        "--no-progress",
        "--no-cache",  # compile here and now, never reuse another build's executable
    ]


def reproduce_entry(
    name: str,
    *,
    tolerance: float | None = None,
    out: str | os.PathLike | None = None,
) -> Reproduction:
    """Retrain zoo entry `name` from its config, as its card says (`odezoo train NAME`,
    in a fresh process), and compare the retrained model's metrics with the card's.

    Where [`check_entry`][odezoo.zoo.check_entry] asks whether the shipped weights give
    the card's numbers, this asks whether today's code still trains those weights' numbers
    from the config: a change to the solver or the fit loop that moves the result shows
    up here and nowhere else.

    Arguments:

    - `name`: a zoo entry with a card (`metrics.json`).
    - `tolerance`: the relative tolerance for every metric (plus 0.005 absolute on an
      accuracy). `None` (the default) takes the entry's own `meta.card.reproduce_rtol`
      (a relative tolerance per metric, for entries whose training amplifies rounding)
      where it has one, else `REPRODUCE_RTOL`: 5% on a loss, 25% on the forward NFE, and
      0.005 absolute on an accuracy.
    - `out`: the run directory to train into (kept afterwards, so that
      `odezoo zoo build NAME OUT` can rebuild the entry from it); default a
      temporary directory, removed afterwards.

    Returns:

    A [`Reproduction`][odezoo.zoo.Reproduction]; `str()` of it is one line starting with
    "reproduced" or "NOT reproduced" and giving each metric, the card's value and the
    bound.

    Why these tolerances: training is bit-deterministic on one machine (two runs of the
    same config give identical weights), but XLA rounds differently on another CPU or at
    another optimisation level, and a training run carries each difference through every
    later step. Retraining the fast entries with XLA at `-O0`
    (`XLA_FLAGS=--xla_backend_optimization_level=0`) and limited to SSE4.2
    (`--xla_cpu_max_isa=SSE4_2`, as on an older CPU), against the default, moved their
    held-out losses by at most 2.5% (seed-cubic-anode, 0.00700 to 0.00717; the other
    seed-cubic entries at their recipe and anode-spheres by less), so 5% leaves room for
    other CPUs and still catches a change of code
    that matters (the solver change that moved seed-cubic-anode's loss from 0.0096 to
    0.19, or seed-cubic-odenet's from 0.13 to 0.21). Where training amplifies rounding
    more (node-spheres: 37%), the entry states its own, measured tolerance in
    `meta.card.reproduce_rtol`, and its card says so. The forward NFE is an integer that
    moves by whole solver steps (6 evaluations each for Dopri5), hence 25%; an accuracy
    on 2000 test points moves by 0.0005 a point, hence 0.005.

    !!! warning

        It trains the entry: seconds for the seed-cubic entries, 10 to 20 minutes for the
        FFJORD and digits entries on 2 CPU cores.

    Example:

    ```python
    from odezoo.zoo import reproduce_entry

    result = reproduce_entry("seed-cubic-resnet")
    print(result)
    assert result.reproduced
    ```
    """
    folder = entry_dir(name)
    if not (folder / METRICS).is_file():
        raise FileNotFoundError(
            f"zoo entry {name!r} has no card ({folder / METRICS}) to reproduce; train and "
            f"build it first: odezoo train {name} --out DIR, then "
            f"odezoo zoo build {name} DIR"
        )
    card = json.loads((folder / METRICS).read_text())
    stated = card["metrics"]
    entry_rtol = dict(_card_meta(config(name)).get("reproduce_rtol") or {})
    bounds = {k: _bound(k, v, tolerance, entry_rtol) for k, v in stated.items()}
    version = source_version()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix=f"odezoo-reproduce-{name}-") as tmp:
        run = Path(out) if out is not None else Path(tmp) / name
        env = dict(os.environ)
        # The child imports the odezoo that is imported here.
        src = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
        done = subprocess.run(_train_command(name, run), capture_output=True, text=True, env=env)
        if done.returncode != 0:
            lines = [ln for ln in (done.stderr or done.stdout).splitlines() if ln.strip()]
            error = lines[-1] if lines else f"exit status {done.returncode}"
            return Reproduction(
                name, False, stated, {}, bounds, time.perf_counter() - start,
                card.get("built_with"), version, error,
            )  # fmt: skip
        cfg = config(name)
        measured = evaluate(load(run), cfg, **_eval_changes(cfg))
    ok = all(_within(measured.get(k), v, bounds[k]) for k, v in stated.items())
    return Reproduction(
        name, ok, stated, measured, bounds, time.perf_counter() - start,
        card.get("built_with"), version,
    )  # fmt: skip


def fast_entries() -> list[str]:
    """The entries whose config marks them as quick to retrain
    (`meta.card.reproduce_in_ci: true`: about a minute or less on 2 CPU cores), which CI
    reproduces on every run."""
    from ._registry import names

    return [n for n in names() if _card_meta(config(n)).get("reproduce_in_ci")]
