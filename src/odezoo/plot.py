"""Figures shared by the training loop, the CLI and the zoo (matplotlib, no display needed)."""

from __future__ import annotations

import os
from collections.abc import Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def plot_training(
    records: Sequence[dict],
    path: str | os.PathLike | None = None,
    *,
    title: str | None = None,
) -> Figure:
    """Loss and NFE against training step, side by side.

    Uses matplotlib's object API with the Agg canvas, so it never needs a display and
    never changes pyplot's global backend.

    Arguments:

    - `records`: the training records of a run (`metrics.jsonl`; those with
      `"kind": "train"` are plotted; `"kind": "eval"` records with a `"loss"` are drawn
      as points).
    - `path`: if given, the figure is saved there (format from the suffix, e.g. `.png`).
    - `title`: an optional title.

    Returns:

    The `matplotlib.figure.Figure`.

    Example:

    ```python
    from odezoo.plot import plot_training

    records = [{"kind": "train", "step": s, "loss": 1 / s, "nfe_forward": 20 + s}
               for s in range(1, 50)]
    fig = plot_training(records, "/tmp/training.png", title="demo")
    ```
    """
    train = [r for r in records if r.get("kind", "train") == "train"]
    evals = [r for r in records if r.get("kind") == "eval" and r.get("loss") is not None]
    fig = Figure(figsize=(10, 4), layout="constrained")
    FigureCanvasAgg(fig)
    ax_loss, ax_nfe = fig.subplots(1, 2)

    steps = [r["step"] for r in train if r.get("loss") is not None]
    losses = [r["loss"] for r in train if r.get("loss") is not None]
    ax_loss.plot(steps, losses, lw=1, label="train")
    if evals:
        ax_loss.plot(
            [r["step"] for r in evals], [r["loss"] for r in evals], "o", ms=4, label="eval"
        )
        ax_loss.legend()
    if losses and min(losses) > 0:
        ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("loss")
    ax_loss.set_title("loss")

    drew = False
    for name, label in (("nfe_forward", "forward"), ("nfe_backward", "backward")):
        pts = [(r["step"], r[name]) for r in train if r.get(name) is not None]
        if pts:
            ax_nfe.plot(*zip(*pts, strict=True), lw=1, label=label)
            drew = True
    if drew:
        ax_nfe.legend()
    else:
        ax_nfe.text(
            0.5,
            0.5,
            "no ODE solves (NFE not applicable)",
            ha="center",
            va="center",
            transform=ax_nfe.transAxes,
        )
    ax_nfe.set_xlabel("step")
    ax_nfe.set_ylabel("function evaluations per step")
    ax_nfe.set_title("NFE")
    if title:
        fig.suptitle(title)
    if path is not None:
        fig.savefig(path, dpi=100)
    return fig
