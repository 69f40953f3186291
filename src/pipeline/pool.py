"""Independent fits of one stage in a pool of worker processes, so that both cores work.

A stage's variants share nothing but the prepared data, and each is seeded on its own when it
starts (``training.seed_everything``), so the process it runs in does not change its numbers.
The number of threads its ops are split over can (oneDNN's convolutions sum in another order
on 1 thread than on 2), so that number depends only on the machine, the number of tasks and the
task's place among them, never on how many workers were asked for (``waves``): the tasks run
side by side, one thread each on a 2-core machine, and a last odd task, which would leave a core
idle, runs alone with every core. ``train.workers=1`` then gives the same weights as
``train.workers=2``; tests/test_pool.py checks it. On a 2-core machine most fits are small
networks whose steps keep one core busy; two side by side take about the time of one.

Each worker is a spawned interpreter (no TensorFlow state inherited through fork) that opens the
stage's context once (tracking, the experiment's code, the prepared data), pins TensorFlow to its
threads and then takes tasks. A single task with the whole machine runs in this process, as it
always did. A worker that dies (killed, out of memory) fails the stage with a message naming the
task it had; what finished before it is in MLflow, and the stage's outputs are left as they were
(they are written atomically). Workers run in their own sessions: a Ctrl-C reaches the stage's
process alone, which passes it on once to the running fits (they stop at their next batch).
The tune stage keeps one ``Workers`` for all its batches of trials (pipeline.tuning.batches).
"""

from __future__ import annotations

import contextlib
import importlib
import multiprocessing
import os
import signal
import sys
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from typing import Any, Callable, Iterator, Mapping, Sequence

from omegaconf import OmegaConf

from pipeline import interrupts
from pipeline.errors import WorkerDied

#: how often a waiting stage looks for a Ctrl-C it deferred (interrupts.deferred)
POLL_SECONDS = 0.5

_stage = None  # a worker's StageContext, opened once by _start_worker


def cores() -> int:
    """The cores this process may run on (its affinity, not the machine's count)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass(frozen=True)
class Wave:
    """Tasks that run side by side: ``tasks`` (indices) in ``workers`` processes, each fit on
    ``threads`` TensorFlow threads."""

    tasks: range
    workers: int
    threads: int

    @property
    def in_this_process(self) -> bool:
        """One worker with every core: no worker is needed (a lone task, a 1-core machine)."""
        return self.workers == 1 and self.threads == cores()


def waves(requested: int | None, n_tasks: int) -> list[Wave]:
    """How ``n_tasks`` fits share the cores. A fit's threads are its share of the cores when
    as many fits run at once as there are cores, so they depend on the machine and the task's
    place in the list, never on ``requested`` (the workers: None for one per core, at most one
    per task). Tasks that would leave cores idle at the end (the 5th of 5 on 2 cores, the 3rd
    of inception's 3 networks) run last, in a wave of their own with the idle cores' threads."""
    n_cores = cores()
    leftover = n_tasks % n_cores if n_tasks > n_cores else 0
    groups = [range(0, n_tasks - leftover), range(n_tasks - leftover, n_tasks)]
    return [
        Wave(
            group, max(1, min(requested or n_cores, len(group))), max(1, n_cores // min(n_cores, len(group)))
        )
        for group in groups
        if len(group)
    ]


def _start_worker(threads: int, stage_name: str, cfg: dict) -> None:
    import tensorflow as tf

    from pipeline.stage import StageContext

    # its own session: a terminal's Ctrl-C reaches the stage's process alone, which passes it
    # on once (Workers.interrupt); a second SIGINT would make the worker stop mid-step
    os.setsid()
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
    for wave in waves(workers, len(tasks)):
        yield from _run_wave(stage, function, tasks, wave, describe)


def _run_wave(
    stage, function: Callable, tasks: Sequence[tuple], wave: Wave, describe
) -> Iterator[tuple[int, Any]]:
    with Workers(stage, wave) as workers:
        yield from workers.run(function, {index: tasks[index] for index in wave.tasks}, describe)


class Workers:
    """A wave's worker processes, started on first use and kept for several rounds of tasks
    (the tune stage's batches of trials); with ``wave.in_this_process``, this process."""

    def __init__(self, stage, wave: Wave) -> None:
        self.stage, self.wave = stage, wave
        self.pool: ProcessPoolExecutor | None = None
        self.running: dict = {}  # future -> task index
        self.interrupted = False

    def __enter__(self) -> "Workers":
        return self

    def __exit__(self, *exc) -> None:
        if self.pool is not None:
            if any(not future.done() for future in self.running):
                self.interrupt()  # Ctrl-C, or the caller stopped early: end the running fits
            try:
                self.pool.shutdown(wait=True, cancel_futures=True)
            except KeyboardInterrupt:  # a second Ctrl-C: do not wait for them
                self.kill()
                raise

    def _start(self) -> ProcessPoolExecutor:
        if self.pool is None:
            self.pool = ProcessPoolExecutor(
                self.wave.workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_start_worker,
                initargs=(
                    self.wave.threads,
                    self.stage.stage,
                    OmegaConf.to_container(self.stage.cfg, resolve=True),
                ),
            )
        return self.pool

    def _processes(self) -> list:
        # concurrent.futures has no public list of its workers; sending them a signal needs it
        return [p for p in (getattr(self.pool, "_processes", None) or {}).values() if p.is_alive()]

    def interrupt(self) -> None:
        """Ctrl-C to the running fits, which end at their next batch (training.fit)."""
        self.interrupted = True
        for process in self._processes():
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGINT)

    def kill(self) -> None:
        for process in self._processes():
            process.kill()

    def run(
        self, function: Callable, tasks: Mapping[int, tuple], describe: Callable[[tuple], str] = str
    ) -> Iterator[tuple[int, Any]]:
        """``function(stage, *task)`` for every task; yields (task index, result) as each
        finishes. A task's exception is raised once the running tasks have finished (their
        results are yielded first); tasks not started are dropped. A dead worker raises
        WorkerDied (the pool is unusable after it)."""
        if self.wave.in_this_process:
            for index, task in tasks.items():
                yield index, function(self.stage, *task)
            return
        module, name = _importable(function)
        pool = self._start()
        self.running = running = {
            pool.submit(_call, module, name, task): index for index, task in tasks.items()
        }
        failure: BaseException | None = None
        while running:
            done, _ = wait(running, timeout=POLL_SECONDS, return_when=FIRST_COMPLETED)
            if interrupts.pending() and not self.interrupted:  # a Ctrl-C this process deferred
                self.interrupt()
            for future in sorted(done, key=running.get):
                index = running.pop(future)
                try:
                    result = future.result()
                except BrokenProcessPool:
                    raise WorkerDied(
                        f"{self.stage.stage} {self.stage.name}: a worker process died while running "
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
            self.running = running = {f: i for f, i in running.items() if not f.cancelled()}
        if failure is not None:
            raise failure
