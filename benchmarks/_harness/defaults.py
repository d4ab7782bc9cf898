"""The experiments' default settings, in a module without JAX so that the command line's
help can name them without importing the harness."""

TOLERANCES: tuple[float, ...] = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7, 1e-8)
"""The tolerances of the `accuracy` experiment (rtol = atol)."""

STEPS: tuple[int, ...] = (16, 64, 256, 1024, 4096)
"""The solver step counts of the `scaling` experiment."""

CONTENDERS: tuple[str, ...] = (
    "odezoo",
    "odezoo-unfixed",
    "odezoo-backsolve",
    "odezoo-auto",
    "jax-experimental-ode",
    "torchdiffeq-odeint",
    "torchdiffeq-adjoint",
    "torchode",
)
"""Every contender `run_peers` knows, in the order the tables list them."""

PRECISION_TOLERANCES: tuple[float, ...] = (1e-3, 1e-4, 1e-5, 1e-6, 1e-7)
"""The tolerances (rtol = atol) of the work-precision diagrams (`precision`)."""
