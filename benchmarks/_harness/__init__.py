"""The benchmark harness of the built-in workloads, run from a checkout (not installed
with odezoo): `python benchmarks/run.py {adjoints,scaling,peers,accuracy,precision,all}`
(`cli.py`), and the pieces the diagnostic scripts next to it import.

- `workloads.py`, `spiral.py`: the toy, MLP, CNF, conv and spiral workloads, each with
  its weights saved as NumPy arrays so that every framework runs the same model.
- `measure.py`: a workload's training step, NFE and float64 reference gradient.
- `adjoints.py`, `scaling.py`, `accuracy.py`: the adjoint table, the scaling with the
  number of steps and the gradient error against tolerance.
- `peers.py`: torchdiffeq, torchode and `jax.experimental.ode` on the same weights (the
  only modules that import PyTorch, when it is installed: `pip install -e ".[benchmarks]"`).
- `precision.py`: the work-precision diagrams.
- `report.py`: their markdown tables and plots; `defaults.py`: the experiments' settings.

What a user runs on their own model stays in the package, `odezoo.bench`
(`benchmark_adjoints`, `odezoo bench adjoints --entry NAME`), and is what this harness
measures with. Results are summarised in `docs/benchmarks.md`.
"""
