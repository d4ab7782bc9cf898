"""Reports: environment, JSON, markdown tables and plots under `benchmarks/results/`."""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import math
import os
import platform
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


def _num(x, fmt="{:.3g}") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "–"
    return fmt.format(x)


def _mib(b) -> str:
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
                f"`{r['chosen_adjoint']}`: {_num(r['timing']['predicted_ms'])} ms)"
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
                _num(r["timing"]["median_ms"]),
                _num(r["ratio"], "{:.2f}"),
                _num(r["timing"]["compile_s"], "{:.1f}"),
                _mib(r["memory"]["temp_bytes"]),
                str(nfe.get("forward", "–")),
                str(nfe.get("backward_evals", "–")),
                str(nfe.get("backward_vjps", "–")),
                _num(r["grad_error"], "{:.1e}"),
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


def peers_markdown(result: dict[str, Any]) -> str:
    """The peer comparison as a markdown table."""
    out = preamble("Peers: one training step, same weights (loss + gradient + SGD)", result)
    out.append(
        "Timings interleaved in one run; ratio = contender's median / odezoo's default "
        "(checkpoint, batch as one ODE), so > 1 means odezoo is faster. Loss diff: "
        "relative difference from odezoo's loss at the same tolerance (different step "
        "sequences). Same-weights check: fixed-step Euler (8 steps) in both frameworks. "
        f"PyTorch intra-op threads: {result.get('torch_threads')}, device: "
        f"{result.get('torch_device') or 'cpu'}. torchode: `torch.compile` of its "
        "AutoDiffAdjoint (per-example step sizes) unless the run says `eager`. "
        "odezoo-auto: timed as `fit` runs it, in blocks of `check_every` steps (one "
        "checked, the others with the adjoint in brackets, which its check chose); "
        "consecutive calls of one compiled step run faster than the single interleaved "
        "calls of the other rows on steps of a few ms (about 9% on the toy)."
    )
    for name, why in result.get("skipped", {}).items():
        out.append(f"\nSkipped {name}: {why}")
    out.append("")
    rows = []
    for r in result["rows"]:
        for name, c in r["contenders"].items():
            if "error" in c:
                rows.append([r["workload"], name, "failed: " + c["error"][:80], "", "", "", ""])
                continue
            nfe = str(c.get("nfe_forward", "–"))
            if "nfe_backward_evals" in c:
                nfe += f" / {c['nfe_backward_evals']}"
            if "chosen_adjoint" in c:  # "auto": what its check chose
                name = f"{name} ({c['chosen_adjoint']})"
            rows.append(
                [
                    r["workload"],
                    name,
                    _num(c.get("median_ms")),
                    _num(c.get("ratio"), "{:.2f}"),
                    _num(c.get("loss"), "{:.6g}"),
                    _num(c.get("loss_rel_diff"), "{:.1e}"),
                    nfe,
                ]
            )
    out.append(
        table(
            [
                "workload",
                "contender",
                "ms/step",
                "ratio",
                "loss",
                "loss diff",
                "fwd NFE (/ bwd evals)",
            ],
            rows,
        )
    )
    checks = [(r["workload"], r.get("same_weights_check")) for r in result["rows"]]
    checks = [(w, c) for w, c in checks if c]
    if checks:
        out.append("")
        out.append(
            table(
                ["workload", "Euler loss rel. diff", "Euler gradient rel. diff"],
                [
                    [
                        w,
                        _num(c.get("loss_rel_diff"), "{:.1e}"),
                        _num(c.get("grad_rel_diff"), "{:.1e}"),
                    ]
                    if "error" not in c
                    else [w, "failed: " + c["error"][:80], ""]
                    for w, c in checks
                ],
            )
        )
    return "\n".join(out) + "\n"


def scaling_markdown(result: dict[str, Any]) -> str:
    """The scaling experiment as a markdown table (one row per step count)."""
    out = preamble("Scaling with the number of solver steps", result)
    out.append(
        f"Workload: {result['workload']['description']}; {result['solver']}. "
        "Per strategy: median ms per training step / XLA temp memory in MiB."
    )
    out.append("")
    names = list(dict.fromkeys(r["strategy"] for r in result["rows"]))
    rows = []
    for n in result["steps"]:
        row = [str(n)]
        for name in names:
            r = next((x for x in result["rows"] if x["steps"] == n and x["strategy"] == name), None)
            if r is None or "error" in r:
                row.append("failed" if r else "–")
            else:
                row.append(
                    f"{_num(r['timing']['median_ms'])} ms / {_mib(r['memory']['temp_bytes'])} MiB"
                )
        rows.append(row)
    out.append(table(["steps", *names], rows))
    return "\n".join(out) + "\n"


def accuracy_markdown(result: dict[str, Any]) -> str:
    """Gradient error against tolerance as a markdown table."""
    out = preamble("Gradient error against tolerance", result)
    out.append(
        "Relative L2 error of the float32 parameter gradient against a float64 "
        f"reference at tolerance {result['reference_tol']:g}; Dopri5 at rtol = atol = "
        "tol. In brackets: forward steps."
    )
    out.append("")
    keys = list(dict.fromkeys((r["workload"], r["strategy"]) for r in result["rows"]))
    rows = []
    for wl, st in keys:
        row = [wl, st]
        for tol in result["tolerances"]:
            r = next(
                (
                    x
                    for x in result["rows"]
                    if (x["workload"], x["strategy"], x["tol"]) == (wl, st, tol)
                ),
                None,
            )
            if r is None or "error" in r:
                row.append("failed" if r else "–")
            else:
                row.append(f"{_num(r['grad_error'], '{:.1e}')} ({r['steps']})")
        rows.append(row)
    out.append(table(["workload", "strategy", *[f"{t:g}" for t in result["tolerances"]]], rows))
    return "\n".join(out) + "\n"


def precision_markdown(result: dict[str, Any]) -> str:
    """The work-precision data as a markdown table: ms per step and gradient error per
    contender and tolerance, the front marked."""
    out = preamble("Work-precision: time per training step against gradient error", result)
    out.append(
        "Per cell: median ms per training step (loss + gradient + SGD) / relative L2 "
        "error of the float32 parameter gradient against float64 at tolerance "
        f"{result['reference_tol']:g}; rtol = atol = tol. Contenders of one workload and "
        "tolerance are timed in alternation. **Bold**: on the workload's front (no "
        "contender both faster and more accurate). torchode runs in mode "
        f"`{result.get('torchode_mode')}`."
    )
    for name, why in result.get("skipped", {}).items():
        out.append(f"\nSkipped {name}: {why}")
    out.append("")
    on_front = set()
    workloads = list(dict.fromkeys(r["workload"] for r in result["rows"]))
    for wl in workloads:
        for r in precision_front([x for x in result["rows"] if x["workload"] == wl]):
            on_front.add((r["workload"], r["contender"], r["tol"]))
    keys = list(dict.fromkeys((r["workload"], r["contender"]) for r in result["rows"]))
    rows = []
    for wl, name in keys:
        row = [wl, name]
        for tol in result["tolerances"]:
            r = next(
                (
                    x
                    for x in result["rows"]
                    if (x["workload"], x["contender"], x["tol"]) == (wl, name, tol)
                ),
                None,
            )
            if r is None:
                row.append("–")
            elif "error" in r:
                row.append("failed")
            else:
                cell = f"{_num(r.get('median_ms'))} / {_num(r.get('grad_error'), '{:.1e}')}"
                row.append(f"**{cell}**" if (wl, name, tol) in on_front else cell)
        rows.append(row)
    out.append(table(["workload", "contender", *[f"{t:g}" for t in result["tolerances"]]], rows))
    return "\n".join(out) + "\n"


def precision_front(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows on the work-precision front: no other row is at least as fast and at
    least as accurate, and strictly better in one (rows without a time or error are
    ignored)."""
    ok = [r for r in rows if r.get("median_ms") is not None and r.get("grad_error") is not None]
    out = []
    for r in ok:
        dominated = any(
            o["median_ms"] <= r["median_ms"]
            and o["grad_error"] <= r["grad_error"]
            and (o["median_ms"] < r["median_ms"] or o["grad_error"] < r["grad_error"])
            for o in ok
        )
        if not dominated:
            out.append(r)
    return out


# -- plots --------------------------------------------------------------------------------


def plot_scaling(result: dict[str, Any], out_dir: str | os.PathLike) -> list[Path]:
    """`scaling_time.png` and `scaling_memory.png`: time and memory against steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out_dir = Path(out_dir)
    paths = []
    names = list(dict.fromkeys(r["strategy"] for r in result["rows"]))
    for what, key, label in (
        ("time", lambda r: r["timing"]["median_ms"], "ms per training step"),
        ("memory", lambda r: r["memory"]["temp_bytes"] / 2**20, "XLA temp memory (MiB)"),
    ):
        fig, ax = plt.subplots(figsize=(5.5, 4))
        for name in names:
            pts = [
                (r["steps"], key(r))
                for r in result["rows"]
                if r["strategy"] == name and "error" not in r
            ]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, marker="o", label=name)
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("solver steps (Euler)")
        ax.set_ylabel(label)
        ax.set_title(f"{what} vs steps: {result['workload']['name']}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        fig.tight_layout()
        path = out_dir / f"scaling_{what}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def plot_accuracy(result: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """`accuracy.png`: gradient error against tolerance, a panel per workload."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r["workload"] for r in result["rows"]))
    fig, axes = plt.subplots(1, len(workloads), figsize=(5 * len(workloads), 4), squeeze=False)
    for ax, wl in zip(axes[0], workloads, strict=True):
        names = list(dict.fromkeys(r["strategy"] for r in result["rows"] if r["workload"] == wl))
        for name in names:
            pts = [
                (r["tol"], r["grad_error"])
                for r in result["rows"]
                if r["workload"] == wl and r["strategy"] == name and "error" not in r
            ]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, marker="o", label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.invert_xaxis()
        ax.set_xlabel("rtol = atol")
        ax.set_ylabel("relative gradient error")
        ax.set_title(wl)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.tight_layout()
    path = Path(out_dir) / "accuracy.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def plot_precision(result: dict[str, Any], out_dir: str | os.PathLike) -> Path:
    """`precision.png`: ms per training step against gradient error, a panel per
    workload, a curve per contender (its points are the tolerances)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = list(dict.fromkeys(r["workload"] for r in result["rows"])) or ["(none)"]
    fig, axes = plt.subplots(1, len(workloads), figsize=(5.5 * len(workloads), 4.5), squeeze=False)
    for ax, wl in zip(axes[0], workloads, strict=True):
        names = list(dict.fromkeys(r["contender"] for r in result["rows"] if r["workload"] == wl))
        for name in names:
            pts = [
                (r["grad_error"], r["median_ms"])
                for r in result["rows"]
                if r["workload"] == wl
                and r["contender"] == name
                and r.get("median_ms") is not None
                and r.get("grad_error") is not None
            ]
            if pts:
                xs, ys = zip(*pts, strict=True)
                style = "-" if name.startswith("odezoo") else "--"
                ax.plot(xs, ys, style, marker="o", markersize=4, label=name)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("relative gradient error (vs float64)")
        ax.set_ylabel("ms per training step")
        ax.set_title(wl)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path = Path(out_dir) / "precision.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(kind: str, result: dict[str, Any], out_dir: str | os.PathLike) -> list[Path]:
    """Write `<kind>.json`, `<kind>.md` and, for scaling, accuracy and precision, the plots.

    Arguments:

    - `kind`: `"adjoints"`, `"peers"`, `"scaling"`, `"accuracy"` or `"precision"`.
    - `result`: what the matching `run_*` returned. Its `"environment"` (hardware and
      library versions, see [`environment`][odezoo.bench.environment]) is recorded now
      when the result has none.
    - `out_dir`: the folder (created if needed). Files of the same names are replaced.

    Returns the paths written.

    ```python
    import tempfile
    from odezoo import bench

    result = bench.run_peers([], include=["odezoo"], log=lambda _: None)
    paths = bench.write_report("peers", result, tempfile.mkdtemp())
    ```
    """
    if kind not in ("adjoints", "peers", "scaling", "accuracy", "precision"):
        raise InputError(
            f"unknown report kind {kind!r}; choose adjoints, peers, scaling, accuracy or precision"
        )
    if not result.get("environment"):
        result = {**result, "environment": environment()}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    render = {
        "adjoints": adjoints_markdown,
        "peers": peers_markdown,
        "scaling": scaling_markdown,
        "accuracy": accuracy_markdown,
        "precision": precision_markdown,
    }[kind]
    paths = [write_json(out_dir / f"{kind}.json", result)]
    md = out_dir / f"{kind}.md"
    md.write_text(render(_clean(result)))
    paths.append(md)
    if kind == "scaling":
        paths += plot_scaling(_clean(result), out_dir)
    if kind == "accuracy":
        paths.append(plot_accuracy(_clean(result), out_dir))
    if kind == "precision":
        paths.append(plot_precision(_clean(result), out_dir))
    return paths
