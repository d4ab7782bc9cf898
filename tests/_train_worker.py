"""Runs a small ODE-Net training in a fresh process, for tests/test_train.py.

`python _train_worker.py OUT.json sharded` (with XLA_FLAGS giving 4 CPU devices): trains
on one device and on all devices and writes both loss curves (the one-device run is also
the reference of the two-process test). `python _train_worker.py
OUT.json dist PORT PROCESS_ID`: one of two processes of a jax.distributed run.
"""

import json
import sys


def run(devices=None):
    import diffrax
    import jax
    import numpy as np
    import optax

    import odezoo
    from odezoo.train import data_mesh, fit

    x, y = odezoo.data.concentric_spheres(dim=2, n_inner=16, n_outer=16, key=jax.random.key(0))
    # Fixed Euler steps compile fastest; the sharding machinery is the same for any solver.
    solver = odezoo.Solver(solver=diffrax.Euler(), dt0=0.25)
    net = odezoo.ODENet(2, width_size=8, out_size=1, solver=solver, key=jax.random.key(1))
    mesh = None if devices is None else data_mesh(8, devices=devices)
    result = fit(
        net,
        (x, y),
        loss="huber",
        optimizer=optax.adam(1e-2),
        steps=4,
        batch_size=8,
        key=jax.random.key(2),
        mesh=mesh,
    )
    leaves = jax.tree_util.tree_leaves(result.model)
    return {
        "losses": [float(v) for v in result.losses],
        "nfe": [r["nfe_forward"] for r in result.history],
        "params": float(sum(np.abs(np.asarray(a)).sum() for a in leaves)),
        "devices": result.summary["num_devices"],
        "processes": result.summary["num_processes"],
    }


def nan_failures():
    """Failures read from the solve statistics with equinox's errors as NaN (run with
    EQX_ON_ERROR=nan): a step budget exhausted, and a diverging run."""
    import diffrax
    import jax
    import numpy as np
    import optax

    import odezoo
    from odezoo.train import TrainingError, errors_as_nan, fit

    assert errors_as_nan()
    x = np.linspace(-1, 1, 8, dtype=np.float32)[:, None]
    y = x**3 + 0.1 * x
    report = {}
    euler = odezoo.Solver(solver=diffrax.Euler(), dt0=0.2, max_steps=6)
    cases = {
        # dt0 = 0.05 from the third step on needs 20 Euler steps, above max_steps = 6.
        "max_steps": (euler, optax.adam(1e-2), [(2, {"dt0": 0.05})]),
        # A learning rate of 1e6 blows the dynamics up: the adaptive solve stalls.
        "diverged": (odezoo.Solver(max_steps=64), optax.sgd(1e6), None),
    }
    for name, (solver, opt, tolerance) in cases.items():
        net = odezoo.ODENet(1, width_size=8, solver=solver, key=jax.random.key(0))
        try:
            fit(net, (x, y), optimizer=opt, steps=10, key=jax.random.key(0), tolerance=tolerance)
            report[name] = None
        except TrainingError as e:
            leaves = jax.tree_util.tree_leaves(e.model)
            report[name] = {
                "cause": e.cause,
                "step": e.step,
                "message": str(e),
                "model_finite": bool(all(np.all(np.isfinite(a)) for a in leaves)),
            }
    return report


def main():
    out, mode = sys.argv[1], sys.argv[2]
    if mode == "sharded":
        import jax

        report = {"single": run(jax.devices()[:1]), "sharded": run()}
    elif mode == "dist":
        port, pid = sys.argv[3], int(sys.argv[4])
        from odezoo.train import errors_as_nan, initialize_distributed

        initialize_distributed(f"localhost:{port}", 2, pid, timeout=240)
        errors_as_nan()
        report = run()
    elif mode == "nan":
        report = nan_failures()
    else:
        raise SystemExit(f"unknown mode {mode}")
    with open(out, "w") as f:
        json.dump(report, f)


if __name__ == "__main__":
    main()
