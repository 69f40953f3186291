"""Independent fits of one stage in a pool of worker processes, so that both cores work.

A stage's variants share nothing but the prepared data, and each is seeded on its own when it
starts (``training.seed_everything``), so the process it runs in does not change its numbers.
The number of threads its ops are split over can (oneDNN's convolutions sum in another order
on 1 thread than on 2), so that number depends only on the machine and the number of tasks,
never on how many workers were asked for: each fit gets its share of the cores as if all the
tasks ran side by side. ``train.workers=1`` then gives the same weights as ``train.workers=2``;
tests/test_pool.py checks it. On a 2-core machine most fits are small networks whose steps keep
one core busy; two side by side take about the time of one.

Each worker is a spawned interpreter (no TensorFlow state inherited through fork) that opens the
stage's context once (tracking, the experiment's code, the prepared data), pins TensorFlow to its
threads and then takes tasks. A single task with the whole machine runs in this process, as it
always did. A worker that dies (killed, out of memory) fails the stage with a message naming the
task it had; what finished before it is in MLflow, and the stage's outputs are left as they were
(they are written atomically).
"""

from __future__ import annotations

import importlib
import multiprocessing
import os
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, Callable, Iterator, Sequence

from omegaconf import OmegaConf

from pipeline.errors import WorkerDied

_stage = None  # a worker's StageContext, opened once by _start_worker


def cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def plan(requested: int | None, n_tasks: int) -> tuple[int, int]:
    """(worker processes, TensorFlow threads per fit) for ``n_tasks`` fits: the threads are the
    cores' share of each fit when as many run at once as there are cores (so they do not depend
    on ``requested``); the workers are ``requested`` (None: one per core), at most one per task."""
    threads = max(1, cores() // max(1, min(cores(), n_tasks)))
    return max(1, min(requested or cores(), n_tasks)), threads


def in_this_process(requested: int | None, n_tasks: int) -> bool:
    """One worker with every core: no worker is needed (a lone task, or a 1-core machine)."""
    workers, threads = plan(requested, n_tasks)
    return workers == 1 and threads == cores()


def _start_worker(threads: int, stage_name: str, cfg: dict) -> None:
    import tensorflow as tf

    from pipeline.stage import StageContext

    # before the first op: TensorFlow fixes its thread pools then
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)
    global _stage
    _stage = StageContext.open(stage_name, OmegaConf.create(cfg))


def _call(module: str, function: str, args: tuple) -> Any:
    return getattr(importlib.import_module(module), function)(_stage, *args)


def _importable(function: Callable) -> tuple[str, str]:
    """Where a worker finds ``function``: a stage run as ``python -m pipeline.train`` defines
    its functions in ``__main__``, which a spawned worker knows by the module's own name."""
    module = function.__module__
    if module == "__main__":
        module = getattr(sys.modules["__main__"].__spec__, "name", module)
    return module, function.__qualname__


def run(
    stage,
    function: Callable,
    tasks: Sequence[tuple],
    *,
    workers: int | None,
    describe: Callable[[tuple], str] = str,
) -> Iterator[tuple[int, Any]]:
    """``function(stage, *task)`` for every task; yields (task index, result) as each finishes.

    ``function`` is a module-level function; in a worker, ``stage`` is that worker's own
    context, opened from the same config. A task's exception is raised here, after the tasks
    already running have finished (their results are yielded first); tasks not started are
    dropped.
    """
    n_workers, threads = plan(workers, len(tasks))
    if in_this_process(workers, len(tasks)):
        for index, task in enumerate(tasks):
            yield index, function(stage, *task)
        return
    module, name = _importable(function)
    config = OmegaConf.to_container(stage.cfg, resolve=True)
    with ProcessPoolExecutor(
        n_workers,
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(threads, stage.stage, config),
    ) as pool:
        running = {pool.submit(_call, module, name, task): index for index, task in enumerate(tasks)}
        failure: BaseException | None = None
        try:
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in sorted(done, key=running.get):
                    index = running.pop(future)
                    try:
                        result = future.result()
                    except BrokenProcessPool:
                        raise WorkerDied(
                            f"{stage.stage} {stage.name}: a worker process died while running "
                            f"{describe(tasks[index])} (killed, or out of memory?); nothing of the "
                            f"stage's outputs was written. Rerun with fewer workers to use less memory."
                        ) from None
                    except BaseException as error:
                        if failure is None:  # the first one; the running tasks still finish
                            failure = error
                            for other in running:
                                other.cancel()
                        continue
                    yield index, result
                running = {f: i for f, i in running.items() if not f.cancelled()}
        finally:
            pool.shutdown(wait=True, cancel_futures=True)
        if failure is not None:
            raise failure
