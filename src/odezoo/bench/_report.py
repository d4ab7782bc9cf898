"""Reports: the environment, strict JSON and the markdown table of the adjoint benchmark
(and the helpers the experiments under `benchmarks/` write their reports with)."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import math
import os
import platform
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax

from .._errors import InputError


def environment() -> dict[str, Any]:
    """Hardware and library versions of this run (recorded in every result file).

    The `accelerator` entry names the GPU, or says that none was available; `load`
    is the machine's 1/5/15-minute load average at the start (other work on a shared
    machine slows every timing alike, but not the ratios measured in one run as much).
    """
    devices = jax.devices()
    gpu = [d for d in devices if d.platform == "gpu"]
    versions = {}
    for name in (
        "odezoo",
        "jax",
        "jaxlib",
        "diffrax",
        "equinox",
        "optax",
        "numpy",
        "torch",
        "torchdiffeq",
    ):
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    try:
        load = list(os.getloadavg())
    except OSError:  # pragma: no cover
        load = None
    return {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "platform": devices[0].platform,
        "devices": [str(d) for d in devices],
        "accelerator": gpu[0].device_kind if gpu else "none (no GPU available in this session)",
        "cpu": _cpu_name(),
        "cpu_count": cpu_count(),
        "machine": platform.machine(),
        "python": platform.python_version(),
        "load_average": load,
        "versions": versions,
    }


def _cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:  # pragma: no cover
        pass
    return platform.processor() or "unknown"


def cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def hardware_line(env: dict[str, Any]) -> str:
    """One line: CPU, cores, accelerator and the main library versions."""
    v = env["versions"]
    libs = ", ".join(
        f"{k} {v[k]}" for k in ("jax", "diffrax", "equinox", "torch", "torchdiffeq") if v.get(k)
    )
    return (
        f"{env['cpu_count']}-core CPU ({env['cpu']}), accelerator: {env['accelerator']}; "
        f"{libs}; load average at start {_fmt_load(env.get('load_average'))}"
    )


def _fmt_load(load) -> str:
    return "n/a" if not load else "/".join(f"{x:.1f}" for x in load)


# -- JSON ---------------------------------------------------------------------------------


def _clean(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_clean(v) for v in obj]
    return obj


def write_json(path: str | os.PathLike, result: dict[str, Any]) -> Path:
    """Write `result` as strict JSON (NaN and inf become `null`)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(_clean(result), indent=1, allow_nan=False, default=str) + "\n")
    return path


# -- markdown -----------------------------------------------------------------------------


def num(x, fmt="{:.3g}") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return fmt.format(x)


def mib(b) -> str:
    return "–" if b is None else f"{b / 2**20:.3g}"


def table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def preamble(title: str, result: dict[str, Any]) -> list[str]:
    """A report's heading and hardware line, as the first lines of its markdown."""
    return [f"## {title}", "", f"Hardware: {hardware_line(result['environment'])}.", ""]


def adjoints_markdown(result: dict[str, Any]) -> str:
    """The adjoint benchmark as a markdown table, with its workloads listed."""
    out = preamble("Adjoint strategies: one training step (loss + gradient + SGD)", result)
    for name, wl in result["workloads"].items():
        note = f" ({wl['note']})" if wl.get("note") else ""
        ref = result["references"].get(name, {})
        solver = wl.get("solver") or f"Dopri5 rtol={wl['rtol']:g}, atol={wl['atol']:g}"
        if "skipped" in ref:
            reference = f"no float64 reference ({ref['skipped']})"
        else:
            reference = (
                f"float64 reference: {ref.get('steps', '?')} steps at "
                f"{ref.get('tol', float('nan')):g}"
            )
        out.append(f"- **{name}**: {wl['description']}; {solver}{note}. {reference}.")
    out.append("")
    out.append(
        "Time: median ms per jitted step after warm-up (ratio: over `checkpoint`, "
        "odezoo's default, same run); compile: seconds to lower and compile. Memory: "
        "XLA's compiled temp buffers (deterministic). NFE: forward evaluations "
        "(from the solve's statistics), backward evaluations of f (recomputation, "
        "reverse solves, checks) and VJPs (counted in a separate run). Gradient "
        "error: relative L2 against float64 at the reference tolerance listed above."
    )
    auto = [r for r in result["rows"] if r.get("steps_per_call")]
    if auto:
        every = sorted({r["steps_per_call"] for r in auto})
        chosen = ", ".join(
            f"{r['workload']}: {r['chosen_adjoint']}"
            + (
                f" (predicted from the single-call medians of `checked` and "
                f"`{r['chosen_adjoint']}`: {num(r['timing']['predicted_ms'])} ms)"
                if "predicted_ms" in r.get("timing", {})
                else ""
            )
            for r in auto
        )
        out.append("")
        out.append(
            f"`auto` is timed as `fit` runs it: a block of {'/'.join(map(str, every))} steps "
            "(the first with `checked`, the rest with the adjoint its check chose) per "
            "round, divided by the block's length; its NFE are per step over the block, its "
            "gradient error is that of the chosen adjoint (the steps between checks), its "
            f"memory the larger of the two steps'. Chosen: {chosen}."
        )
    out.append("")
    rows = []
    for r in result["rows"]:
        if "error" in r or "skipped" in r:
            what = "failed: " + r["error"][:80] if "error" in r else "skipped"
            rows.append([r["workload"], r["strategy"], what] + [""] * 8)
            continue
        nfe = r["nfe"]
        rows.append(
            [
                r["workload"],
                r["strategy"],
                num(r["timing"]["median_ms"]),
                num(r["ratio"], "{:.2f}"),
                num(r["timing"]["compile_s"], "{:.1f}"),
                mib(r["memory"]["temp_bytes"]),
                str(nfe.get("forward", "–")),
                str(nfe.get("backward_evals", "–")),
                str(nfe.get("backward_vjps", "–")),
                num(r["grad_error"], "{:.1e}"),
                "yes" if r.get("fell_back") else "",
            ]
        )
    out.append(
        table(
            [
                "workload",
                "strategy",
                "ms/step",
                "ratio",
                "compile s",
                "temp MiB",
                "fwd NFE",
                "bwd evals",
                "bwd VJPs",
                "grad error",
                "fell back",
            ],
            rows,
        )
    )
    return "\n".join(out) + "\n"


def write_report(kind: str, result: dict[str, Any], out_dir: str | os.PathLike) -> list[Path]:
    """Write `adjoints.json` and the markdown table `adjoints.md`.

    Arguments:

    - `kind`: `"adjoints"`, the report of
      [`benchmark_adjoints`][odezoo.bench.benchmark_adjoints] (the built-in workloads'
      other experiments, run from a checkout by `python benchmarks/run.py`, write theirs
      with `benchmarks/_harness/report.py`).
    - `result`: what `benchmark_adjoints` returned. Its `"environment"` (hardware and
      library versions, see [`environment`][odezoo.internal.environment]) is recorded now
      when the result has none.
    - `out_dir`: the folder (created if needed). Files of the same names are replaced.

    Returns the paths written (an example: the `odezoo.bench` module's).
    """
    if kind != "adjoints":
        raise InputError(
            f"unknown report kind {kind!r}: odezoo.bench writes 'adjoints' (the other "
            "experiments' reports are written by the scripts in benchmarks/, from a checkout)"
        )
    return write_files(kind, result, out_dir, adjoints_markdown)


def write_files(
    kind: str,
    result: dict[str, Any],
    out_dir: str | os.PathLike,
    render: Callable[[dict[str, Any]], str],
    plots: Callable[[dict[str, Any], Path], list[Path]] | None = None,
) -> list[Path]:
    """Write `<kind>.json`, `<kind>.md` (`render(result)`) and `plots(result, out_dir)`
    into `out_dir`, recording the environment when `result` has none; returns the paths
    written. Non-finite floats become `null` / `–` in both."""
    if not result.get("environment"):
        result = {**result, "environment": environment()}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = [write_json(out_dir / f"{kind}.json", result)]
    md = out_dir / f"{kind}.md"
    md.write_text(render(_clean(result)))
    paths.append(md)
    if plots is not None:
        paths += plots(_clean(result), out_dir)
    return paths
