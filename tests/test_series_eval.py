"""The path from a config to a carded series entry: the data registry's series datasets,
the series losses by name, the held-out series metrics (against hand-computed values)
and the figures chosen by the data."""

import diffrax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import odezoo
from odezoo.config import build_data, build_loss, build_model, full_config
from odezoo.losses import (
    elbo_loss,
    forecast_mse,
    get_loss,
    series_cross_entropy,
    series_mse,
)
from odezoo.metrics import evaluate
from odezoo.nn import ODERNN, AbstractForecaster, GRUSeq2Seq, LatentODE, as_series


def _cfg(data, model=None, loss="elbo"):
    model = model or {"type": "latent_ode", "data_size": 1, "latent_size": 2, "hidden_size": 4}
    return {"model": model, "data": data, "train": {"steps": 1, "loss": loss}}


@pytest.mark.parametrize("name, channels", [("periodic", 1), ("spirals", 2)])
def test_config_builds_each_series_dataset(name, channels):
    data = build_data(_cfg({"name": name, "n_train": 6, "n_test": 4, "n_times": 12}))
    assert data.name == name
    for part, n in ((data.train, 6), (data.test, 4)):
        times, values, mask, t_times, t_values, t_mask = (np.asarray(a) for a in part)
        assert t_times.shape == (n, 12) and t_values.shape == (n, 12, channels)
        assert np.all(t_mask == 1) and np.all(mask[:, 0] == 1)
        t_split = 2.5 if name == "periodic" else 3.0
        # The encoder sees a subset of the values before t_split, and nothing else.
        assert np.all(times[mask[..., 0] > 0] < t_split)
        enc = times.shape[1]
        assert enc < 12 and np.all(times == t_times[:, :enc])
        np.testing.assert_array_equal(values, t_values[:, :enc] * mask)
        assert 0 < mask.mean() < 1
    assert not np.allclose(data.train[3][:4], data.test[3])  # another seed
    whole = build_data(
        _cfg({"name": name, "n_train": 3, "n_test": 3, "n_times": 12, "t_split": None})
    )
    assert whole.train[0].shape == whole.train[3].shape  # interpolation only


def test_series_losses_by_name():
    assert get_loss("elbo") is elbo_loss and get_loss("forecast_mse") is forecast_mse
    assert get_loss("series_cross_entropy") is series_cross_entropy
    assert get_loss("series_mse") is series_mse
    cfg = _cfg({"name": "periodic", "n_train": 2, "n_test": 2})
    assert full_config(cfg)["train"]["loss"] == "elbo" and build_loss(cfg) is elbo_loss
    with pytest.raises(odezoo.ConfigError, match="unknown loss"):
        full_config({**cfg, "train": {"steps": 1, "loss": "elbow"}})


class _Constant(AbstractForecaster):
    """Predicts `c` everywhere: metrics by hand."""

    c: jax.Array
    in_shape: tuple[int, ...] = (1,)
    name = "Constant"

    def predict(self, series, query_times, *, key=None):
        return jnp.full((*query_times.shape, 1), self.c), None

    def apply(self, xs, *, key=None):
        return self.predict(xs, as_series(xs).times)


def test_forecast_metrics_against_hand_computed_values():
    # Three series; the encoder's window ends at the last observed time: series 0 observes
    # t = 0, 1 (so 2, 3 are extrapolation), series 1 observes t = 0 only (1, 2, 3 are),
    # series 2 observes t = 0, 1, 2.
    t = jnp.array([[0.0, 1.0, 2.0, 3.0]] * 3)
    mask = jnp.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]], jnp.float32)[..., None]
    y = jnp.array([[1.0, 2.0, 3.0, 4.0], [0.0, 1.0, -1.0, 2.0], [2.0, 2.0, 2.0, 2.0]])[..., None]
    target_mask = jnp.ones_like(y).at[2, 3].set(0.0)  # one target missing
    data = (t, y * mask, mask, t, y, target_mask)
    model = _Constant(jnp.array(1.0))
    sq = (np.asarray(y)[..., 0] - 1.0) ** 2
    interp = [sq[0, :2], sq[1, :1], sq[2, :3]]
    extrap = [sq[0, 2:], sq[1, 1:]]  # series 2's only later target is missing
    want_interp = np.concatenate(interp).mean()
    want_extrap = np.concatenate(extrap).mean()
    for batch_size in (1, 2, 3):  # chunks, padded or not, give the same sums
        m = evaluate(model, data, "forecast_mse", batch_size=batch_size)
        assert list(m) == ["loss", "extrap_mse", "interp_mse"]
        np.testing.assert_allclose(m["interp_mse"], want_interp, rtol=1e-6)
        np.testing.assert_allclose(m["extrap_mse"], want_extrap, rtol=1e-6)
        np.testing.assert_allclose(m["loss"], np.concatenate(interp + extrap).mean(), rtol=1e-6)
    value, _ = forecast_mse(model, data)
    np.testing.assert_allclose(value, m["loss"], rtol=1e-6)
    # Without targets after any window, there is no extrapolation metric.
    m = evaluate(model, (t, y, jnp.ones_like(y), t, y, jnp.ones_like(y)), "forecast_mse")
    assert "extrap_mse" not in m and m["interp_mse"] == pytest.approx(sq.mean(), rel=1e-6)


def test_elbo_metrics_of_a_latent_ode():
    cfg = _cfg({"name": "periodic", "n_train": 2, "n_test": 3, "n_times": 8})
    data = build_data(cfg).test
    # Fixed Euler steps: the metrics are what is checked, and they compile fast.
    euler = odezoo.Solver(diffrax.Euler(), dt0=0.25)
    model = LatentODE(1, 2, 4, width_size=4, solver=euler, key=jax.random.key(0))
    key = jax.random.key(5)
    m = evaluate(model, data, "elbo", key=key)
    assert list(m) == ["loss", "extrap_mse", "interp_mse", "nfe_forward"]
    series, targets = as_series(*data[:3]), as_series(*data[3:])

    @eqx.filter_jit
    def direct(model, series, targets, key):  # one compilation for both
        value, _ = elbo_loss(model, (*series, *targets), key)
        return value, model.predict(series, targets.times)

    value, (pred, stats) = direct(model, series, targets, key)
    np.testing.assert_allclose(m["loss"], value, rtol=1e-5)
    seen = np.asarray(series.mask)[..., 0] > 0
    t_last = np.where(seen, np.asarray(series.times), -np.inf).max(axis=1)[:, None]
    err = (np.asarray(pred) - np.asarray(targets.values))[..., 0] ** 2
    inside = np.asarray(targets.times) <= t_last
    np.testing.assert_allclose(m["interp_mse"], err[inside].mean(), rtol=1e-4)
    np.testing.assert_allclose(m["extrap_mse"], err[~inside].mean(), rtol=1e-4)
    assert m["nfe_forward"] == float(stats.nfe)


def test_classifier_metrics_and_masked_gru_inputs():
    times, values, mask, labels = odezoo.data.spirals_classification(
        5, 6, key=jax.random.key(0), drop=0.3
    )
    euler = odezoo.Solver(diffrax.Euler(), dt0=0.5)
    rnn = ODERNN(2, 4, width_size=4, out_size=2, solver=euler, key=jax.random.key(1))
    m = evaluate(rnn, (times, values, mask, labels), "series_cross_entropy", batch_size=2)
    logits, _ = eqx.filter_jit(lambda m, s: m.apply(s))(rnn, as_series(times, values, mask))
    acc = np.mean(np.argmax(np.asarray(logits), -1) == np.asarray(labels))
    value, _ = eqx.filter_jit(series_cross_entropy)(rnn, (times, values, mask, labels))
    np.testing.assert_allclose(m["loss"], value, rtol=1e-5)
    assert m["accuracy"] == pytest.approx(acc) and m["nfe_forward"] > 0
    # The GRU baseline ignores what the mask hides.
    gru = GRUSeq2Seq(2, 4, key=jax.random.key(2))
    hidden = jnp.where(mask > 0, values, 100.0)
    predict = eqx.filter_jit(lambda m, s, t: m.predict(s, t)[0])
    a = predict(gru, as_series(times, values, mask), times + 1.0)
    b = predict(gru, as_series(times, hidden, mask), times + 1.0)
    np.testing.assert_array_equal(a, b)


def test_series_entries_train_from_a_config_and_get_their_figures(tmp_path):
    from odezoo.zoo._figure_registry import figures_for

    model_cfg = {"type": "gru_seq2seq", "data_size": 2, "hidden_size": 4}
    cfg = _cfg({"name": "spirals", "n_train": 4, "n_test": 4, "n_times": 10}, model_cfg)
    cfg["train"].update(loss="forecast_mse", steps=2)
    data = build_data(cfg)
    result = odezoo.train.fit(
        build_model(cfg), data.train, loss=build_loss(cfg), steps=2, key=jax.random.key(0)
    )
    assert np.all(np.isfinite(result.losses))
    figures = figures_for("test", cfg, result.model, tmp_path)
    assert [f for f, _ in figures] == ["spirals.png"] and (tmp_path / "spirals.png").is_file()
    assert eqx.tree_equal(result.model.in_shape, (2,))


def test_a_dataset_adds_its_own_held_out_metrics(monkeypatch):
    from odezoo.config import _data, build_evaluate, data_metrics, register_data

    monkeypatch.setattr(_data, "DATA_BUILDERS", dict(_data.DATA_BUILDERS))
    monkeypatch.setattr(_data, "DATA_METRICS", dict(_data.DATA_METRICS))

    def line(n: int = 4):
        x = jnp.linspace(0.0, 1.0, n)[:, None]
        return (x, 2 * x), (x, 2 * x)

    def slope(model, test, key):
        x, _ = test
        return {"slope": float(jnp.mean(model.apply(x)[0][1:] - model.apply(x)[0][:1]))}

    register_data("line", line, metrics=slope)
    assert data_metrics("line") is slope
    cfg = {"model": {"type": "mlp", "in_size": 1, "out_size": 1}, "data": {"name": "line"},
           "train": {"steps": 1}}  # fmt: skip
    metrics = build_evaluate(cfg)(build_model(cfg))
    assert set(metrics) == {"loss", "slope"}
    register_data("line", line, replace=True)  # re-registered without: gone
    assert data_metrics("line") is None and set(build_evaluate(cfg)(build_model(cfg))) == {"loss"}
