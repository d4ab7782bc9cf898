"""Reports of the built-in workloads' experiments: the markdown tables of the peers,
scaling, accuracy and work-precision runs and their plots; the adjoint table, JSON and
environment are the package's (`odezoo.bench._report`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from odezoo._errors import InputError
from odezoo.bench._report import adjoints_markdown, mib, num, preamble, table, write_files


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
                    num(c.get("median_ms")),
                    num(c.get("ratio"), "{:.2f}"),
                    num(c.get("loss"), "{:.6g}"),
                    num(c.get("loss_rel_diff"), "{:.1e}"),
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
                        num(c.get("loss_rel_diff"), "{:.1e}"),
                        num(c.get("grad_rel_diff"), "{:.1e}"),
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
                    f"{num(r['timing']['median_ms'])} ms / {mib(r['memory']['temp_bytes'])} MiB"
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
                row.append(f"{num(r['grad_error'], '{:.1e}')} ({r['steps']})")
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
                cell = f"{num(r.get('median_ms'))} / {num(r.get('grad_error'), '{:.1e}')}"
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


KINDS: tuple[str, ...] = ("adjoints", "peers", "scaling", "accuracy", "precision")
"""The experiments `write_report` writes."""


def write_report(kind: str, result: dict[str, Any], out_dir: str | os.PathLike) -> list[Path]:
    """Write `<kind>.json`, `<kind>.md` and, for scaling, accuracy and precision, the plots.

    Arguments:

    - `kind`: `"adjoints"`, `"peers"`, `"scaling"`, `"accuracy"` or `"precision"`.
    - `result`: what the matching `run_*` returned. Its `"environment"` (hardware and
      library versions, see `odezoo.internal.environment`) is recorded now when the result
      has none.
    - `out_dir`: the folder (created if needed). Files of the same names are replaced.

    Returns the paths written.
    """
    if kind not in KINDS:
        raise InputError(f"unknown report kind {kind!r}; choose {', '.join(KINDS)}")
    render = {
        "adjoints": adjoints_markdown,
        "peers": peers_markdown,
        "scaling": scaling_markdown,
        "accuracy": accuracy_markdown,
        "precision": precision_markdown,
    }[kind]
    plots = {
        "scaling": plot_scaling,
        "accuracy": lambda result, out_dir: [plot_accuracy(result, out_dir)],
        "precision": lambda result, out_dir: [plot_precision(result, out_dir)],
    }.get(kind)
    return write_files(kind, result, out_dir, render, plots)
