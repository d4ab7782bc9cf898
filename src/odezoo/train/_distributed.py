"""Training across hosts with `jax.distributed`."""

from __future__ import annotations

import jax

from .._errors import InputError


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    timeout: int = 300,
) -> bool:
    """Join a multi-process JAX run (one process per host, or several on one machine).

    Must be called before anything else touches JAX's devices. After it,
    `jax.devices()` lists the devices of every process, and
    [`fit`][odezoo.train.fit]'s mesh spans them all: each process runs the same
    program on the same data and computes its share of every batch. Only process 0
    writes the run directory.

    On CPU, cross-process collectives use gloo (`jax_cpu_collectives_implementation`).

    Arguments:

    - `coordinator_address`: `"host:port"` of process 0.
    - `num_processes`: the number of processes.
    - `process_id`: this process's number, `0 <= process_id < num_processes`.
    - `timeout`: seconds to wait for the other processes.

    Returns:

    `True` when a multi-process run was joined; `False` (and nothing done) when
    `num_processes` is `None` or 1 and no coordinator is given.

    Example:

    ```python
    from odezoo.train import initialize_distributed

    # on host 0: initialize_distributed("10.0.0.1:1234", 2, 0)
    # on host 1: initialize_distributed("10.0.0.1:1234", 2, 1)
    initialize_distributed()   # single process: a no-op
    ```
    """
    if coordinator_address is None and (num_processes is None or num_processes == 1):
        return False
    if coordinator_address is None or num_processes is None or process_id is None:
        raise InputError(
            "a multi-process run needs all of coordinator_address, num_processes and process_id"
        )
    if not (isinstance(num_processes, int) and num_processes >= 1):
        raise InputError(f"num_processes must be a positive int, got {num_processes!r}")
    if not (isinstance(process_id, int) and 0 <= process_id < num_processes):
        raise InputError(f"process_id must be in [0, {num_processes}), got {process_id!r}")
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(
        coordinator_address,
        num_processes,
        process_id,
        initialization_timeout=timeout,
    )
    return True
