"""Figures of zoo entries, chosen by the entry's data (never by its name)."""

from __future__ import annotations

import os
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .._solve import solve


def _figure(*, ncols: int, width: float = 4.5, height: float = 4.0) -> tuple[Figure, list]:
    fig = Figure(figsize=(width * ncols, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, list(np.atleast_1d(axes))


def _save(fig: Figure, path: str | os.PathLike | None) -> Figure:
    if path is not None:
        fig.savefig(path, dpi=110)
    return fig


def seed_figure(models: dict, x, y, path=None) -> Figure:
    """The seed chapter's figure: the data (green circles) and each model's predictions on
    [-3, 3], so their extrapolation can be compared.

    Arguments:

    - `models`: label -> model with a `batch` method on `(N, 1)` inputs.
    - `x`, `y`: the training data, `(N, 1)` each.
    - `path`: where to save the PNG (optional).
    """
    grid = jnp.linspace(-3.0, 3.0, 100)[:, None]
    fig, (ax,) = _figure(ncols=1, width=6)
    ax.plot(np.asarray(x[:, 0]), np.asarray(y[:, 0]), "o", color="green", label="data")
    for label, model in models.items():
        pred = eqx.filter_jit(lambda m, g: m.batch(g))(model, grid)
        ax.plot(np.asarray(grid[:, 0]), np.asarray(pred[:, 0]), lw=2, label=label)
    ax.set_xlabel("input")
    ax.set_ylabel("output")
    ax.set_ylim(-30, 30)
    ax.legend()
    ax.set_title("fit on [-2, 2], extrapolation to [-3, 3]")
    return _save(fig, path)


def trajectory_figure(model, x, path=None, *, title: str | None = None) -> Figure:
    """Activation trajectories of a 1-D ODE model: x axis "input / output", y axis
    "time / depth", 200 time points. With augmentation, the augmented coordinate is
    drawn in a second panel.

    Arguments:

    - `model`: a model with an ODE part (`model.ode_model()`, e.g. an
      [`ODENet`][odezoo.ODENet]) on 1-D inputs, whose state is one array.
    - `x`: inputs `(N, 1)`.
    - `path`: where to save the PNG (optional).
    - `title`: an optional title.
    """
    ode = model.ode_model()
    field, y0, t0, t1, batched = ode.ode(jnp.asarray(x))
    ts = jnp.linspace(t0, t1, 200)
    solve_at = lambda s, f, y, t: solve(s, f, y, t0=t0, t1=t1, ts=t, batched=batched)[0]
    traj = eqx.filter_jit(solve_at)(ode.solver, field, y0, ts)  # (T, N, S)
    ncols = 2 if traj.shape[-1] > 1 else 1
    fig, axes = _figure(ncols=ncols)
    for i in range(traj.shape[1]):
        axes[0].plot(np.asarray(traj[:, i, 0]), np.asarray(ts), lw=1.5)
    axes[0].set_xlabel("input / output")
    axes[0].set_ylabel("time / depth")
    axes[0].set_title(title or "activation trajectories")
    if ncols == 2:
        for i in range(traj.shape[1]):
            axes[1].plot(np.asarray(traj[:, i, 0]), np.asarray(traj[:, i, 1]), lw=1.5)
        axes[1].set_xlabel("input / output")
        axes[1].set_ylabel("augmented dimension")
        axes[1].set_title("the extra dimension lets trajectories pass")
    return _save(fig, path)


def spheres_figure(model, x, y, path=None, *, title: str | None = None) -> Figure:
    """Concentric spheres: the flow of test points in the plane of the first two state
    coordinates, and the decision regions of the classifier.

    Arguments:

    - `model`: an [`ODENet`][odezoo.ODENet] with a linear head on 2-D inputs.
    - `x`, `y`: test points `(N, 2)` and ±1 labels `(N, 1)`.
    - `path`: where to save the PNG (optional).
    - `title`: an optional title.
    """
    x, y = jnp.asarray(x)[:400], np.asarray(y)[:400, 0]
    ts = jnp.linspace(model.t0, model.t1, 40)
    traj = np.asarray(eqx.filter_jit(lambda m, a, t: m.trajectory(a, t))(model, x, ts))
    fig, axes = _figure(ncols=2)
    colors = np.where(y > 0, "tab:red", "tab:blue")
    for i in range(traj.shape[1]):
        axes[0].plot(traj[:, i, 0], traj[:, i, 1], lw=0.4, color=colors[i], alpha=0.5)
    axes[0].scatter(traj[-1, :, 0], traj[-1, :, 1], s=4, c=colors)
    axes[0].set_title("flow of test points (first two state coordinates)")
    axes[0].set_aspect("equal")
    grid = jnp.linspace(-2.0, 2.0, 120)
    gx, gy = jnp.meshgrid(grid, grid)
    pts = jnp.stack([gx.ravel(), gy.ravel()], axis=1)
    pred = eqx.filter_jit(lambda m, p: m.batch(p))(model, pts)
    axes[1].contourf(
        np.asarray(gx),
        np.asarray(gy),
        np.asarray(pred[:, 0]).reshape(gx.shape),
        levels=20,
        cmap="RdBu_r",
        vmin=-1.5,
        vmax=1.5,
    )
    axes[1].scatter(np.asarray(x[:, 0]), np.asarray(x[:, 1]), s=3, c=colors)
    axes[1].set_title("decision function and test points")
    axes[1].set_aspect("equal")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def compare_training_figure(runs: dict[str, Sequence[dict]], path=None) -> Figure:
    """Training loss and forward NFE of several runs side by side (e.g. NODE vs ANODE).

    Arguments:

    - `runs`: label -> the run's training records (`metrics.jsonl`).
    - `path`: where to save the PNG (optional).
    """
    fig, (ax_loss, ax_nfe) = _figure(ncols=2, width=5.5)
    for label, records in runs.items():
        train = [r for r in records if r.get("kind", "train") == "train"]
        steps = [r["step"] for r in train]
        ax_loss.plot(steps, [r["loss"] for r in train], lw=1, label=label)
        pts = [(r["step"], r["nfe_forward"]) for r in train if r.get("nfe_forward") is not None]
        if pts:
            ax_nfe.plot(*zip(*pts, strict=True), lw=1.5, label=label)
    ax_loss.set_yscale("log")
    ax_loss.set_xlabel("step")
    ax_loss.set_ylabel("training loss")
    ax_nfe.set_xlabel("step")
    ax_nfe.set_ylabel("forward NFE")
    ax_loss.legend()
    ax_nfe.legend()
    return _save(fig, path)


def density_figure(model, data_sample, path=None, *, key=None, title=None) -> Figure:
    """A 2-D flow: the data, the learned density on a grid, and samples from the model.

    Arguments:

    - `model`: a 2-D [`CNF`][odezoo.CNF] (exact trace).
    - `data_sample`: `(N, 2)` points from the data distribution.
    - `path`: where to save the PNG (optional).
    - `key`: the key of the model's samples.
    - `title`: an optional title.
    """
    key = jax.random.key(0) if key is None else key
    lim = 4.5
    grid = jnp.linspace(-lim, lim, 100)
    gx, gy = jnp.meshgrid(grid, grid)
    pts = jnp.stack([gx.ravel(), gy.ravel()], axis=1)
    logp = eqx.filter_jit(lambda m, p: m.batch(p))(model, pts)
    samples = eqx.filter_jit(lambda m, k: m.sample(k, 2000))(model, key)
    fig, axes = _figure(ncols=3, width=4.0)
    data_sample = np.asarray(data_sample)
    axes[0].scatter(data_sample[:, 0], data_sample[:, 1], s=1)
    axes[0].set_title("data")
    axes[1].imshow(
        np.exp(np.asarray(logp)).reshape(gx.shape),
        origin="lower",
        extent=(-lim, lim, -lim, lim),
        cmap="viridis",
    )
    axes[1].set_title("model density")
    s = np.asarray(samples)
    axes[2].scatter(s[:, 0], s[:, 1], s=1, color="tab:orange")
    axes[2].set_title("model samples")
    for ax in axes:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def tolerance_figure(sweep: Sequence[dict], metric: str, path=None, *, title=None) -> Figure:
    """A metric against forward NFE as the test-time tolerance loosens.

    Arguments:

    - `sweep`: records with `rtol`, `nfe_forward` and `metric`.
    - `metric`: the metric's key, e.g. `"accuracy"` or `"loss"`.
    - `path`: where to save the PNG (optional).
    - `title`: an optional title.
    """
    fig, (ax,) = _figure(ncols=1, width=5.5)
    nfe = [r["nfe_forward"] for r in sweep]
    val = [r[metric] for r in sweep]
    ax.plot(nfe, val, "o-")
    for r in sweep:
        ax.annotate(
            f"{r['rtol']:g}",
            (r["nfe_forward"], r[metric]),
            fontsize=8,
            textcoords="offset points",
            xytext=(4, 4),
        )
    ax.set_xlabel("forward NFE per batch")
    ax.set_ylabel(metric)
    ax.set_xscale("log")
    ax.set_title(title or f"{metric} against NFE (labels: rtol = atol)")
    return _save(fig, path)


# -- the time-series entries ---------------------------------------------------------------


def series_classification_figure(
    model, series: tuple, path=None, *, n: int = 8, title: str | None = None
) -> Figure:
    """2-D series to classify (e.g. spirals), one panel each: the observed points in
    time order (the first one circled), titled with the label and the model's
    prediction (red when wrong).

    Arguments:

    - `model`: a series classifier (`model.apply(series) -> (logits (B, classes), stats)`).
    - `series`: `(times, values (B, T, 2), mask (B, T, 2), labels (B,))`.
    - `n`: how many series to draw (the first `n`, in two rows).
    - `path`: where to save the PNG (optional).
    """
    times, values, mask, labels = (np.asarray(a)[:n] for a in series)
    logits, _ = eqx.filter_jit(lambda m, s: m.apply(s))(model, (times, values, mask))
    pred = np.asarray(logits).argmax(axis=1)
    cols = (len(pred) + 1) // 2
    fig = Figure(figsize=(2.6 * cols, 5.6), layout="constrained")
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(2, cols)).ravel()
    for ax, v, m, p, y in zip(axes, values, mask, pred, labels, strict=False):
        seen = m[:, 0] > 0
        ax.plot(v[seen, 0], v[seen, 1], "-", marker=".", ms=3, lw=0.8)
        ax.plot(v[seen][:1, 0], v[seen][:1, 1], "o", mfc="none", ms=8, color="black")
        ax.set_title(f"label {int(y)}, predicted {int(p)}", color="black" if p == y else "red")
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
    for ax in axes[len(pred) :]:
        ax.set_axis_off()
    wrong = int(np.sum(pred != labels))
    fig.suptitle(
        (title + ": " if title else "") + f"{wrong} of {len(pred)} test series misclassified"
    )
    return _save(fig, path)


def sde_paths_figure(
    paths, ts, mean, std, path=None, *, marginal_times=(), data=None, title=None
) -> Figure:
    """Sample paths of a learned SDE against the exact mean and ± 2 standard deviations
    of the process (left), and the samples' histograms at `marginal_times` against the
    exact Gaussian densities (right).

    Arguments:

    - `paths`: `(n, T)` sample paths at times `ts` `(T,)`.
    - `mean`, `std`: the exact mean and standard deviation at `ts`.
    - `marginal_times`: times (among `ts`) whose marginals to draw.
    - `data`: optional `(times (T',), paths (m, T'))` of the true process, drawn thin
      and grey.
    - `path`: where to save the PNG (optional).
    """
    paths, ts = np.asarray(paths), np.asarray(ts)
    mean, std = np.asarray(mean), np.asarray(std)
    fig, (ax, bx) = _figure(ncols=2, width=5.0)
    if data is not None:
        data_ts, data_paths = (np.asarray(a) for a in data)
        for p in data_paths:
            ax.plot(data_ts, p, color="0.6", lw=0.5, alpha=0.6)
    for p in paths[:30]:
        ax.plot(ts, p, color="tab:blue", lw=0.7, alpha=0.7)
    ax.plot(ts, mean, color="black", lw=2, label="exact mean")
    ax.plot(ts, mean + 2 * std, "k--", lw=1.5, label="exact mean ± 2 sd")
    ax.plot(ts, mean - 2 * std, "k--", lw=1.5)
    ax.plot(ts, paths.mean(0), color="tab:red", lw=1.5, label="sample mean")
    ax.set_xlabel("t")
    ax.set_ylabel("x")
    ax.legend(loc="upper right", fontsize=8)
    ax.set_title(title or "learned SDE: sample paths")
    for j, t in enumerate(marginal_times):
        k = int(np.argmin(np.abs(ts - t)))
        colour = f"C{j}"
        bx.hist(paths[:, k], bins=40, density=True, alpha=0.4, color=colour, label=f"t = {t:g}")
        grid = np.linspace(mean[k] - 4 * std[k], mean[k] + 4 * std[k], 200)
        dens = np.exp(-0.5 * ((grid - mean[k]) / std[k]) ** 2) / (std[k] * np.sqrt(2 * np.pi))
        bx.plot(grid, dens, color=colour, lw=1.5)
    bx.set_xlabel("x")
    bx.set_title("marginals: samples (bars) and exact (lines)")
    if marginal_times:
        bx.legend(fontsize=8)


def _forecasts(model, batch, n: int, *, points: int, samples: int, key):
    """The first `n` series of a forecasting batch, their dense time grid, and the
    model's forecasts on it: the deterministic one and `samples` drawn with keys (equal
    to it for a deterministic model)."""
    from ..nn import as_series

    arrays = [jnp.asarray(a)[:n] for a in batch]
    series = as_series(*arrays[:3])
    targets = as_series(*arrays[3:]) if len(arrays) == 6 else series
    t_end = float(jnp.max(targets.times))
    grid = jnp.broadcast_to(jnp.linspace(0.0, t_end, points), (len(arrays[0]), points))
    predict = eqx.filter_jit(lambda m, s, g, k: m.predict(s, g, key=k)[0])
    mean = np.asarray(predict(model, series, grid, None))
    keys = jax.random.split(jax.random.key(0) if key is None else key, samples)
    draws = np.stack([np.asarray(predict(model, series, grid, k)) for k in keys] or [mean])
    if np.allclose(draws, mean[None]):
        draws = draws[:0]
    observed = np.asarray(jnp.any(series.mask > 0, axis=-1))
    times = np.asarray(series.times)
    last = np.array([t[o].max() for t, o in zip(times, observed, strict=True)])
    return series, targets, np.asarray(grid), mean, draws, observed, last


def forecast_figure(
    model, batch, path=None, *, n: int = 4, samples: int = 10, key=None, title=None
) -> Figure:
    """Forecasts of 1-D irregular series against the data (as in Rubanova et al.
    2019's figure of the latent ODE on the periodic toy): the observations the model
    saw, the held-out values, its forecast and, for a latent model, trajectories from
    `samples` draws of the posterior over the initial state.

    Arguments:

    - `model`: an [`AbstractForecaster`][odezoo.nn.AbstractForecaster] on 1 channel.
    - `batch`: a forecasting batch `(times, values, mask, target_times, target_values,
      target_mask)` (or `(times, values, mask)`); its first `n` series are drawn.
    - `path`: where to save the PNG (optional).
    - `n`: how many series (one panel each).
    - `samples`: posterior draws per series (none are drawn for a deterministic model).
    - `key`: the key of the draws.
    - `title`: an optional title.
    """
    series, targets, grid, mean, draws, observed, last = _forecasts(
        model, batch, n, points=200, samples=samples, key=key
    )
    fig, axes = _figure(ncols=len(grid), width=4.0, height=3.2)
    for b, ax in enumerate(axes):
        seen = np.asarray(targets.mask[b, :, 0]) > 0
        ax.plot(np.asarray(targets.times[b])[seen], np.asarray(targets.values[b, :, 0])[seen],
                "o", ms=3, color="0.7", label="held-out data")  # fmt: skip
        obs = observed[b]
        ax.plot(np.asarray(series.times[b])[obs], np.asarray(series.values[b, :, 0])[obs],
                "o", ms=4, color="black", label="observed")  # fmt: skip
        ax.plot(grid[b], mean[b, :, 0], lw=2.5, color="tab:red", label="forecast")
        for i, d in enumerate(draws):  # over the forecast, so a narrow posterior shows
            ax.plot(grid[b], d[b, :, 0], lw=0.7, color="tab:blue", alpha=0.6,
                    label="posterior draws" if i == 0 else None)  # fmt: skip
        ax.axvline(last[b], ls="--", color="0.4", lw=1)
        ax.set_xlabel("time")
        ax.set_title(f"series {b}")
    axes[0].set_ylabel("value")
    axes[0].legend(fontsize=7, loc="lower left")
    if title:
        fig.suptitle(title)
    return _save(fig, path)


def spiral_figure(model, batch, path=None, *, n: int = 4, title=None) -> Figure:
    """Reconstruction and extrapolation of 2-D spirals (as in Chen et al. 2018's latent
    ODE figure): the true spiral, the observations the model saw, its reconstruction over
    the observed window and its extrapolation beyond it.

    Arguments:

    - `model`: an [`AbstractForecaster`][odezoo.nn.AbstractForecaster] on 2 channels.
    - `batch`: a forecasting batch (as for `forecast_figure`); its first `n`
      series are drawn.
    - `path`: where to save the PNG (optional).
    - `n`: how many spirals (one panel each).
    - `title`: an optional title.
    """
    series, targets, grid, mean, _, observed, last = _forecasts(
        model, batch, n, points=300, samples=0, key=None
    )
    fig, axes = _figure(ncols=len(grid), width=3.6, height=3.6)
    for b, ax in enumerate(axes):
        true = np.asarray(targets.values[b])
        ax.plot(true[:, 0], true[:, 1], "-", lw=1, color="0.6", label="true spiral")
        seen = np.asarray(series.values[b])[observed[b]]
        ax.plot(seen[:, 0], seen[:, 1], "o", ms=3, color="black", label="observed")
        inside = grid[b] <= last[b]
        ax.plot(mean[b, inside, 0], mean[b, inside, 1], lw=2, color="tab:blue",
                label="reconstruction")  # fmt: skip
        ax.plot(mean[b, ~inside, 0], mean[b, ~inside, 1], lw=2, color="tab:red",
                label="extrapolation")  # fmt: skip
        ax.set_aspect("equal")
        ax.set_title(f"spiral {b}")
    axes[0].legend(fontsize=7, loc="lower left")
    if title:
        fig.suptitle(title)
    return _save(fig, path)
