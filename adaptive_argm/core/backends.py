"""Where batch runs, the eval suite and the paired benchmark run their jobs: this machine's
process pool (`local`, the default) or a Ray cluster (`ray`, the optional `[ray]` extra).

Both take the same job functions and hand each result back through the same callback as it
finishes, so resuming, fingerprints, records and progress do not depend on the backend.
Nothing here imports Ray until a `RayBackend` is used.

On Ray each worker is an actor: one process set up once (the job's initializer; a separator
loads its model on first use and keeps it), running one job at a time on one CPU, and a share
of a GPU when its jobs separate with a model and the cluster has GPUs. Workers never write into
the output folders: the result sets a job commits are shipped back with its result
(`results.sink`), and the driver commits them with the same checks and the same order as a
local run (`land`). A worker that dies mid-job is restarted and the job run again, up to
`retries` times; after that the job's callback gets `WorkerLost`, and the run goes on.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import sys
import tempfile
from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Protocol, Sequence, get_args

from ..config import Setting, SettingError, UserError, check_choice
from . import heap, results, threads, workers

BackendName = Literal["local", "ray"]
BACKENDS: tuple[BackendName, ...] = get_args(BackendName)
BACKEND = Setting("backend", "backend")
ADDRESS = Setting("address", "address")
RAY_HINT = "pip install 'adaptive-argm[ray]'"
DEFAULT_RETRIES = 2
"""Times a job is run again after its worker process died under it."""
AUTH_LOGGER = "ray._private.authentication.authentication_token_setup"
PROBE_TIMEOUT_S = 3.0
WORKERS_PER_GPU = 4
"""Workers sharing one GPU when their jobs separate with a model: while one restores and
measures on its CPU, the others keep the GPU busy."""


class BackendError(UserError):
    """The cluster cannot be reached or cannot run the jobs; one line."""


class WorkerLost(RuntimeError):
    """A job's worker process died under it more often than it may be retried."""


class Backend(Protocol):
    name: str
    distributed: bool
    """Jobs run in other processes that may sit on other machines (no shared memory, no
    shared module state with the caller)."""

    def connect(self):
        """Reach the cluster now, so that a cluster that cannot be had is said before any work."""

    def workers(self, jobs: int, tasks: int, gpu: bool = False) -> int:
        """How many workers `run_tasks` would use (`jobs`, 0: one per CPU)."""

    def run_tasks(self, fn: Callable[[Any], Any], tasks: Sequence, jobs: int, on_done: Callable[[int, Future], None],
                  *, initializer: Callable[..., None] | None = None, initargs: tuple = (), gpu: bool = False) -> None:
        """As `workers.run_tasks`; `gpu`: the jobs separate with a model that can use a GPU."""

    def map_ordered(self, fn: Callable[[Any], Any], tasks: Sequence, jobs: int,
                    on_progress: Callable[[int, int], None] | None = None) -> list:
        """As `workers.map_ordered`."""

    def close(self) -> None:
        """Let go of what the backend started."""


class LocalBackend:
    """This machine's process pool (`core.workers`), exactly as without a backend."""

    name = "local"
    distributed = False

    def connect(self) -> None:
        pass

    def workers(self, jobs: int, tasks: int, gpu: bool = False) -> int:
        return workers.worker_count(jobs, tasks)

    def run_tasks(self, fn, tasks, jobs, on_done, *, initializer=None, initargs=(), gpu=False) -> None:
        workers.run_tasks(fn, tasks, jobs, on_done, initializer=initializer, initargs=initargs)

    def map_ordered(self, fn, tasks, jobs, on_progress=None) -> list:
        return workers.map_ordered(fn, tasks, jobs, on_progress)

    def close(self) -> None:
        pass


LOCAL = LocalBackend()


def make(name: str = "local", address: str | None = None) -> Backend:
    """The backend `name` (`address`: the Ray cluster to join; None starts a local instance)."""
    check_choice(name, BACKENDS, BACKEND)
    if name == "local":
        if address is not None:
            raise SettingError(ADDRESS, " is for ", BACKEND, " ray")
        return LOCAL
    return RayBackend(address)


# --- result sets shipped from a worker to the driver -----------------------------------------


@dataclass(frozen=True)
class Shipped:
    """A result set a worker committed, to be committed into its folder by the driver."""

    folder: Path
    kind: results.Kind
    input: str | Path | None
    protect: tuple
    replace_other: bool
    files: dict[str, bytes]
    """Relative name -> content, the manifest excepted."""
    manifest: dict


class _Sink:
    """Takes the commits of the sets a job writes in a worker (`results.sink`)."""

    staging_root = Path(tempfile.gettempdir())

    def __init__(self):
        self.sets: list[Shipped] = []

    def take(self, staged: results.ResultSet, names: list[str], manifest: dict) -> None:
        files = {name: (staged.staged_folder / name).read_bytes() for name in names}
        self.sets.append(Shipped(staged.folder, staged.kind, staged.input, tuple(staged.protect),
                                 staged.replace_other, files, manifest))


def land(shipped: Shipped) -> Path:
    """Commit a shipped set into its folder, as the worker would have committed it."""
    with results.ResultSet(shipped.folder, shipped.kind, input=shipped.input, protect=shipped.protect,
                           replace_other=shipped.replace_other) as staged:
        for name, data in shipped.files.items():
            staged.path(name).write_bytes(data)
        return staged.commit(shipped.manifest)


# --- Ray ---------------------------------------------------------------------------------------


class _Worker:
    """One Ray worker process (an actor): set up once, then runs jobs one at a time."""

    def __init__(self, cwd: str, initializer: Callable[..., None] | None, initargs: tuple):
        with contextlib.suppress(OSError):  # relative paths mean what they mean to the driver
            os.chdir(cwd)
        heap.keep_freed_memory()
        threads.one_blas_thread()  # the actors themselves fill the cores
        if initializer is not None:
            initializer(*initargs)
        if "torch" in sys.modules:  # an initializer may size torch for a local pool: use this actor's CPUs
            import ray

            cpus = ray.get_runtime_context().get_assigned_resources().get("CPU", 1)
            sys.modules["torch"].set_num_threads(max(1, int(cpus)))

    def pid(self) -> int:
        return os.getpid()

    def run(self, fn: Callable[[Any], Any], task: Any) -> tuple[Any, list[Shipped]]:
        with results.sink(_Sink()) as taken:
            value = fn(task)
        return value, taken.sets


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def _answers(address: str) -> bool:
    """Something listens at `address` (`HOST:PORT`, `ray://HOST:PORT`), asked once, briefly: Ray
    itself retries an address where nothing listens for minutes. Other forms (`auto`) are Ray's
    to judge."""
    host, _, port = address.split("://", 1)[-1].rpartition(":")
    if not port.isdigit():
        return True
    try:
        socket.create_connection((host or "127.0.0.1", int(port)), timeout=PROBE_TIMEOUT_S).close()
    except OSError:
        return False
    return True


def _cause_line(exc: BaseException) -> str:
    """The last line of a Ray error that says what went wrong (its traceback's exception)."""
    lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
    said = [line for line in lines if not line.startswith(("File ", "^", "~", "Traceback"))]
    return said[-1] if said else type(exc).__name__


class RayBackend:
    """Jobs on a Ray cluster: `address` (`auto`, `host:port`, `ray://host:port`) or, when None,
    a local instance started on first use (and shut down by `close`).

    `num_cpus` and `object_store_bytes` size the local instance (default: Ray's own choice);
    `retries` is how often a job is run again after its worker died under it."""

    name = "ray"
    distributed = True

    def __init__(self, address: str | None = None, *, num_cpus: int | None = None,
                 object_store_bytes: int | None = None, retries: int = DEFAULT_RETRIES):
        self.address = address
        self.num_cpus = num_cpus
        self.object_store_bytes = object_store_bytes
        self.retries = retries
        self._started = False

    def connect(self):
        """The `ray` module, connected to the cluster."""
        try:
            import ray
        except ImportError:
            raise SettingError(BACKEND, f" ray needs Ray: {RAY_HINT}") from None
        if self.address is not None and not _answers(self.address):
            raise BackendError(f"cannot reach the Ray cluster at {self.address}: nothing answers there")
        if ray.is_initialized():
            return ray
        options: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                   "logging_level": logging.WARNING}
        if self.address is None:
            # The local instance listens on the network: Ray's token authentication stays on (its
            # default), without the warning that says it is on.
            logging.getLogger(AUTH_LOGGER).setLevel(logging.ERROR)
            options.update(num_cpus=self.num_cpus, object_store_memory=self.object_store_bytes)
        try:
            ray.init(address=self.address, **options)
        except Exception as exc:  # ConnectionError, or RuntimeError/ValueError for a bad address
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            raise BackendError(f"cannot start or reach {where}: {_one_line(exc)}") from None
        self._started = True
        return ray

    def close(self) -> None:
        if self._started:
            import ray

            ray.shutdown()
            self._started = False

    def _plan(self, jobs: int, tasks: int, gpu: bool) -> tuple[int, dict]:
        """How many workers (`jobs`, 0: one per CPU of the cluster), and each one's Ray options."""
        ray = self.connect()
        total = ray.cluster_resources()
        count = max(1, min(tasks, jobs or int(total.get("CPU", 1))))
        options = {"num_cpus": 1, "max_restarts": -1, "max_task_retries": self.retries}
        if gpu and total.get("GPU", 0) > 0:
            count = max(1, min(count, int(total["GPU"] * WORKERS_PER_GPU)))
            options["num_gpus"] = 1 / WORKERS_PER_GPU
        return count, options

    def workers(self, jobs: int, tasks: int, gpu: bool = False) -> int:
        return self._plan(jobs, tasks, gpu)[0] if tasks else 1

    def run_tasks(self, fn, tasks, jobs, on_done, *, initializer=None, initargs=(), gpu=False) -> None:
        """As `workers.run_tasks`, on Ray: results come back as they finish (`ray.wait`), their
        result sets are committed here, then `on_done` is called. A worker gets jobs once it has
        started (one that cannot start while the cluster is busy is never waited for); a job
        whose worker died more often than `retries` allows fails with `WorkerLost`, and a fresh
        worker takes its place. When no worker can be set up, the jobs fail with the reason."""
        if not tasks:
            return
        ray = self.connect()
        count, options = self._plan(jobs, len(tasks), gpu)
        actor = ray.remote(_Worker).options(**options)
        starting: dict = {}

        def start() -> None:
            worker = actor.remote(os.getcwd(), initializer, initargs)
            starting[worker.pid.remote()] = worker

        for _ in range(count):
            start()
        idle: list = []
        running: dict = {}
        queue = deque(range(len(tasks)))
        setup_error: BaseException = WorkerLost("no worker could be set up")
        try:
            while queue or running:
                while idle and queue:
                    i, worker = queue.popleft(), idle.pop()
                    running[worker.run.remote(fn, tasks[i])] = (i, worker)
                if not (running or starting):  # every worker failed to set up
                    self._fail_all(queue, on_done, setup_error)
                    break
                [ref], _ = ray.wait([*running, *starting], num_returns=1)
                if ref in starting:
                    worker = starting.pop(ref)
                    try:
                        ray.get(ref)
                        idle.append(worker)
                    except ray.exceptions.RayError as exc:
                        setup_error = WorkerLost(f"a worker could not be set up: {_cause_line(exc)}")
                        ray.kill(worker)
                    continue
                i, worker = running.pop(ref)
                done: Future = Future()
                try:
                    value, shipped = ray.get(ref)
                except ray.exceptions.RayTaskError as exc:  # the job raised: its own exception
                    done.set_exception(exc.cause if isinstance(exc.cause, BaseException) else exc)
                    idle.append(worker)
                except ray.exceptions.RayError as exc:  # the worker died, and again on every retry
                    done.set_exception(WorkerLost(f"the worker process died {self.retries + 1} times running this "
                                                  f"job ({type(exc).__name__})"))
                    ray.kill(worker)
                    start()
                else:
                    idle.append(worker)
                    try:
                        for s in shipped:
                            land(s)
                        done.set_result(value)
                    except (results.ResultError, OSError) as exc:  # the folder cannot take it
                        done.set_exception(exc)
                on_done(i, done)
        finally:
            for worker in [*idle, *starting.values(), *(w for _, w in running.values())]:
                ray.kill(worker)

    @staticmethod
    def _fail_all(queue: deque, on_done, error: BaseException) -> None:
        while queue:
            done: Future = Future()
            done.set_exception(error)
            on_done(queue.popleft(), done)

    def map_ordered(self, fn, tasks, jobs, on_progress=None) -> list:
        return workers.map_ordered(fn, tasks, jobs, on_progress, run=self.run_tasks)
