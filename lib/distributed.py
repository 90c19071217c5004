r"""Data parallelism on PyTorch's own engine: ``torch.distributed`` and ``DistributedDataParallel``.

:func:`launch` starts ``world_size`` processes on this machine, joins them in a process
group (rendezvous through a file in the run's temporary folder, so no port is picked and
none can be taken by another program in between; backend ``gloo`` on the CPU, ``nccl`` on
CUDA GPUs, with no other change to the code), runs a *worker* in each and returns what
every worker returned. A worker is a function of this module (spawned processes must be
able to import it) called as ``worker(rank, world_size, device, **kwargs)``:

- :func:`gradient_worker`: one forward and backward pass of a ``DistributedDataParallel``
  model, each process on its share of one batch; returns the all-reduced gradient.
- :func:`fit_worker`: :func:`lib.train.fit` on a ``DistributedDataParallel`` model.
- :func:`timing_worker`: the time of a step split into computation and communication.
- :func:`shards_worker`: which samples each process's :class:`lib.data.BatchLoader` gives.
- :func:`sequence`: several workers one after another in the same processes, since
  starting processes costs far more than these small measurements.

Data parallelism is a large batch. With :math:`W` processes each holding the share
:math:`\mathcal{B}_r` of a batch :math:`\mathcal{B}` of :math:`W B` samples, each computes
the mean gradient of its share and ``DistributedDataParallel`` averages them during the
backward pass (an ``all_reduce``), so every process steps with

.. math::

    \frac{1}{W}\sum_{r=0}^{W-1} \frac{1}{B}\sum_{i \in \mathcal{B}_r} \nabla\ell_i
    = \frac{1}{WB}\sum_{i \in \mathcal{B}} \nabla\ell_i = g_{\mathcal{B}},

the gradient of the whole batch, as one process would with batch :math:`WB`.

Failures are reported, not waited for: a worker that raises or dies, or a process that
cannot join the group, makes :func:`launch` stop the others and raise :class:`WorkerError`
naming the rank that failed first (not a peer that failed after it in a collective) and
its cause; a run that outlasts ``timeout`` is stopped the same way; collectives time out
after ``timeout`` too. The caller's environment is left as it was.

References:
    Li et al., "PyTorch Distributed: experiences on accelerating data parallel training",
    VLDB 2020. Goyal et al., "Accurate, large minibatch SGD: training ImageNet in 1 hour",
    2017.
"""

from __future__ import annotations

import copy
import datetime
import multiprocessing
import os
import signal
import socket
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from lib import checks, schedules
from lib.data import BatchLoader, RandomShiftRotate, TensorData
from lib.train import History, fit

__all__ = [
    "WorkerError",
    "launch",
    "sequence",
    "gradient_worker",
    "fit_worker",
    "timing_worker",
    "shards_worker",
]

HOST = "127.0.0.1"
Worker = Callable[..., Any]


class WorkerError(RuntimeError):
    """A worker process raised, died or ran past the timeout; the message names its rank.

    Attributes:
        rank: the rank of the failed worker, or ``None`` when the run timed out.
    """

    def __init__(self, message: str, rank: int | None) -> None:
        super().__init__(message)
        self.rank = rank


# ------------------------------------------------------------------------- the launcher


def _check_port(port: int) -> int:
    """Check that ``port`` is a valid port that nothing on 127.0.0.1 listens on; return it.

    The test binds as torch's TCP store does, with ``SO_REUSEADDR``, so a port that a
    finished run left in TIME_WAIT, which the store can bind, is not refused.
    """
    checks.integer("port", port, 1, 65535)
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError as error:
            raise ValueError(
                f"port {port} on {HOST} is in use ({error.strerror}): pass port=None to rendezvous "
                "through a file instead"
            ) from None
    return port


def _backend_for(device: torch.device) -> str:
    """The ``torch.distributed`` backend for a device: ``"nccl"`` for CUDA, ``"gloo"`` otherwise."""
    return "nccl" if device.type == "cuda" else "gloo"


def _loopback_interface() -> str | None:
    """The name of the loopback network interface (``lo`` on Linux, ``lo0`` on macOS), if any."""
    names = [name for _, name in socket.if_nameindex()] if hasattr(socket, "if_nameindex") else []
    return next((name for name in ("lo", "lo0") if name in names), None)


def _run(
    rank: int,
    worker: Worker,
    world_size: int,
    device_type: str,
    timeout: float,
    folder: str,
    port: int | None,
    environment: dict[str, str],
    kwargs: dict[str, Any],
) -> None:
    """What each process runs: join the group, run the worker, save its result, leave the group.

    A failure anywhere, joining the group included, leaves an error record with its cause.
    """
    try:
        os.environ.update(environment)  # this process's own environment, not the caller's
        if device_type == "cuda":
            device = torch.device("cuda", rank)
            torch.cuda.set_device(device)
        else:
            device = torch.device("cpu")
            torch.set_num_threads(1)  # one core per process: W processes share the machine's cores
        dist.init_process_group(
            _backend_for(device),
            # a FileStore in the run's folder: no port to pick; or TCP at the caller's port
            init_method=(Path(folder) / "rendezvous").as_uri() if port is None else f"tcp://{HOST}:{port}",
            rank=rank,
            world_size=world_size,
            timeout=datetime.timedelta(seconds=timeout),
        )
        # torch.multiprocessing hands CPU tensors over in shared memory: without a private
        # copy, every process's optimizer would update the same parameters
        result = worker(rank, world_size, device, **copy.deepcopy(kwargs))
        torch.save(result, Path(folder) / f"{rank}.pt")
    except BaseException as error:
        # when one process fails, the others fail next in a collective; the time of each
        # failure lets the parent name the process that failed first
        message = f"{type(error).__name__}: {error}".splitlines()[0]
        record = Path(folder) / f"error-{rank}.txt"
        partial = record.with_suffix(".partial")
        partial.write_text(f"{time.time()!r}\n{message}")
        partial.replace(record)  # atomic: the parent never reads a record half written
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def _start_method() -> str:
    """``forkserver`` where the system has it, else ``spawn``.

    The fork server imports torch and ``lib`` once and each process forks from it, so a
    launch after the first starts its processes in a fraction of a second.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        multiprocessing.get_context("forkserver").set_forkserver_preload(["torch", "lib.distributed"])
        return "forkserver"
    return "spawn"


def launch(
    worker: Worker,
    world_size: int,
    *,
    device: torch.device | str | None = None,
    port: int | None = None,
    timeout: float = 120.0,
    **kwargs: Any,
) -> list[Any]:
    """Run ``worker(rank, world_size, device, **kwargs)`` in ``world_size`` new processes.

    The processes form a ``torch.distributed`` process group (``init_process_group``,
    rendezvous through a ``FileStore`` in the run's temporary folder, or over TCP at
    ``port``) with the backend of
    the device: ``gloo`` on the CPU, where each process uses one thread and talks over the
    loopback interface (``GLOO_SOCKET_IFNAME``, set in the workers only; a value the caller
    set is passed on), and ``nccl`` on CUDA, where rank ``r`` uses GPU ``r``. They are
    started by ``torch.multiprocessing`` (``forkserver`` where available,
    else ``spawn``); the arguments travel by pickling, and so do the results, through
    files in a temporary folder that is removed afterwards.

    Args:
        worker: a function importable by the new processes (defined in a module, such as
            the workers of this module), called as ``worker(rank, world_size, device,
            **kwargs)``; what it returns must pickle.
        world_size: the number of processes, at least 1.
        device: ``"cpu"`` or ``"cuda"``; default: CUDA when there are at least
            ``world_size`` GPUs, else the CPU.
        port: rendezvous over TCP at this port of 127.0.0.1 instead of through a file
            (it must be free; another program may still take it before the processes bind
            it); default: the file.
        timeout: seconds, > 0, that the whole run and each collective may take.
        **kwargs: the worker's keyword arguments.

    Returns:
        The workers' results, indexed by rank.

    Raises:
        ValueError: if ``world_size`` is not a positive integer, ``port`` is not a port
            number or is in use, ``timeout`` is not > 0, or ``device`` is CUDA with fewer
            than ``world_size`` GPUs.
        WorkerError: if a worker cannot join the group, raises or dies (the others are
            stopped; the message names the rank that failed first and the cause), or the
            run takes longer than ``timeout``.
    """
    checks.integer("world_size", world_size, 1)
    checks.number("timeout", timeout, 0, low_open=True)
    if device is None:
        device = "cuda" if torch.cuda.is_available() and torch.cuda.device_count() >= world_size else "cpu"
    device_type = torch.device(device).type
    checks.one_of("device", device_type, ("cpu", "cuda"))
    if device_type == "cuda" and torch.cuda.device_count() < world_size:
        raise ValueError(
            f"world_size={world_size} on CUDA needs one GPU per process, this machine has "
            f"{torch.cuda.device_count()}: use device='cpu' or a smaller world_size"
        )
    port = None if port is None else _check_port(port)
    environment = {}
    interface = os.environ.get("GLOO_SOCKET_IFNAME") or _loopback_interface()
    if interface is not None and device_type == "cpu":
        environment["GLOO_SOCKET_IFNAME"] = interface  # gloo's traffic stays on the loopback
    with tempfile.TemporaryDirectory(prefix="lib-distributed-") as folder:
        context = mp.start_processes(
            _run,
            args=(worker, world_size, device_type, timeout, folder, port, environment, kwargs),
            nprocs=world_size,
            join=False,
            start_method=_start_method(),
        )
        _join(context, timeout, folder)
        return [torch.load(Path(folder) / f"{rank}.pt", weights_only=False) for rank in range(world_size)]


def _join(context: mp.ProcessContext, timeout: float, folder: str) -> None:
    """Wait for every process; on a failure or past ``timeout`` stop them all and raise WorkerError."""
    deadline = time.monotonic() + timeout
    try:
        while not context.join(timeout=max(0.0, min(1.0, deadline - time.monotonic()))):
            if time.monotonic() >= deadline:
                running = [rank for rank, p in enumerate(context.processes) if p.is_alive()]
                raise WorkerError(
                    f"the workers did not finish within timeout={timeout:g} s (ranks still running: "
                    f"{running}); they were stopped",
                    None,
                )
    except (mp.ProcessRaisedException, mp.ProcessExitedException) as error:
        rank, what = _first_failure(context, folder, error)
        raise WorkerError(f"worker rank {rank} {what}; the other workers were stopped", rank) from error
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
            process.join()


def _first_failure(context: mp.ProcessContext, folder: str, error: Exception) -> tuple[int, str]:
    """The rank that failed first and how: a process that died (it left no error record)
    comes first, since its peers fail only after it; otherwise the earliest error."""
    for process in context.processes:
        process.join(timeout=5.0)  # torch has already signalled the others to stop
    records = {}
    for rank in range(len(context.processes)):
        path = Path(folder) / f"error-{rank}.txt"
        if path.exists():
            when, message = path.read_text().split("\n", 1)
            records[rank] = (float(when), message)
    stopped = (0, None, -signal.SIGTERM, -signal.SIGKILL)  # a clean exit, or stopped by the parent
    for rank, process in enumerate(context.processes):
        if rank not in records and process.exitcode not in stopped:
            return rank, f"died with exit code {process.exitcode}"
    if records:
        rank = min(records, key=lambda r: records[r][0])
        return rank, f"failed: {records[rank][1]}"
    if isinstance(error, mp.ProcessExitedException):
        return error.error_index, f"died with exit code {error.exit_code}"
    return error.error_index, f"failed: {str(error).strip().splitlines()[-1]}"


# ----------------------------------------------------------------------------- workers


def sequence(
    rank: int, world_size: int, device: torch.device, *, tasks: Sequence[tuple[Worker, dict[str, Any]]]
) -> list[Any]:
    """Run several workers one after another in the same processes.

    Args:
        tasks: pairs ``(worker, kwargs)``.

    Returns:
        The list of the workers' results on this process, in the order of ``tasks``.
    """
    return [worker(rank, world_size, device, **kwargs) for worker, kwargs in tasks]


def _ddp(model: nn.Module, device: torch.device) -> nn.Module:
    """``model`` on ``device``, wrapped in DDP inside a process group (which starts every
    process from rank 0's weights); outside one, the plain model: a worker called directly
    with ``world_size=1`` is the single-process reference."""
    model = model.to(device)
    if not dist.is_initialized():
        return model
    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def gradient_worker(
    rank: int,
    world_size: int,
    device: torch.device,
    *,
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
) -> Tensor:
    """The gradient one DDP step uses: each process takes the samples ``rank::world_size``.

    Args:
        model: the network (the same on every process).
        x, y: the whole batch; this process uses every ``world_size``-th sample from ``rank``.
        loss_fn: a function ``(output, y) -> mean loss``.

    Returns:
        The all-reduced gradient as one flat vector on the CPU, the same on every process.
        It is the whole batch's mean gradient when ``world_size`` divides the batch size
        (else the shares, of unequal sizes, are weighted equally).

    Raises:
        ValueError: if the batch holds fewer samples than ``world_size``.
    """
    if x.shape[0] < world_size:
        raise ValueError(
            f"world_size must be <= the batch size (each process needs a sample), got "
            f"world_size={world_size} > {x.shape[0]} samples"
        )
    ddp = _ddp(model, device)
    share = slice(rank, None, world_size)
    loss = loss_fn(ddp(x[share].to(device)), y[share].to(device))
    loss.backward()  # DDP averages the gradients over the processes here (all_reduce)
    return torch.cat([p.grad.reshape(-1) for p in ddp.parameters()]).cpu()


def fit_worker(
    rank: int,
    world_size: int,
    device: torch.device,
    *,
    model: nn.Module,
    train: TensorData,
    lr: float,
    epochs: int,
    batch_size: int,
    val: TensorData | None = None,
    schedule: tuple[str, dict[str, Any]] | None = None,
    seed: int = 0,
    record_params: bool = False,
    augment: dict[str, Any] | None = None,
) -> History:
    """:func:`lib.train.fit` with plain SGD on a ``DistributedDataParallel`` model.

    Args:
        model: the network, the same on every process.
        train, val: training and validation data; every process holds all of it.
        lr: the learning rate of ``torch.optim.SGD``.
        epochs, batch_size, seed: as in :func:`lib.train.fit` (``batch_size`` is global).
        schedule: ``(name, kwargs)`` of a schedule in :mod:`lib.schedules`, built in the
            process (a schedule is a closure, which does not pickle), or ``None``.
        record_params: append the flat parameter vector (float64, CPU) to
            ``history.records["params"]`` after every epoch.
        augment: keyword arguments of a :class:`lib.data.RandomShiftRotate` applied to every
            input batch (built in the process: a generator does not pickle), or ``None``.

    Returns:
        The history (the same on every process except the times).
    """
    ddp = _ddp(model, device)
    schedule_fn = None if schedule is None else getattr(schedules, schedule[0])(**schedule[1])

    def params(module: nn.Module, epoch: int, history: History) -> dict[str, Tensor]:
        return {"params": torch.cat([p.detach().reshape(-1) for p in module.parameters()]).double().cpu()}

    return fit(
        ddp,
        torch.optim.SGD(ddp.parameters(), lr=lr),
        nn.CrossEntropyLoss(),
        train.to(device),
        val_data=None if val is None else val.to(device),
        epochs=epochs,
        batch_size=batch_size,
        schedule=schedule_fn,
        seed=seed,
        transform=None if augment is None else RandomShiftRotate(**augment),
        callback=params if record_params else None,
        progress=False,
    )


def timing_worker(
    rank: int,
    world_size: int,
    device: torch.device,
    *,
    model: nn.Module,
    x: Tensor,
    y: Tensor,
    loss_fn: Callable[[Tensor, Tensor], Tensor],
    repeats: int = 30,
) -> dict[str, float]:
    """Median seconds of one step's computation and communication, on this process.

    Each repeat times, after a barrier that lines the processes up: ``compute``, forward
    and backward on this process's share under ``no_sync()`` (no communication);
    ``step``, the same with DDP's gradient ``all_reduce``; ``communication``, an
    ``all_reduce`` alone of a buffer of the gradient's size.

    Args:
        model: the network; x, y: the whole batch (this process takes ``rank::world_size``).
        loss_fn: a function ``(output, y) -> mean loss``.
        repeats: timed repeats, at least 1, after two untimed ones.

    Returns:
        ``{"compute": s, "step": s, "communication": s}``, medians over the repeats.
    """
    checks.integer("repeats", repeats, 1)
    ddp = _ddp(model, device)
    share = slice(rank, None, world_size)
    xb, yb = x[share].to(device), y[share].to(device)
    buffer = torch.zeros(sum(p.numel() for p in ddp.parameters()), device=device)

    def timed(action: Callable[[], None]) -> float:
        dist.barrier()
        start = time.perf_counter()
        action()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return time.perf_counter() - start

    def backward() -> None:
        ddp.zero_grad(set_to_none=True)
        loss_fn(ddp(xb), yb).backward()

    def local_backward() -> None:
        with ddp.no_sync():
            backward()

    times: dict[str, list[float]] = {"compute": [], "step": [], "communication": []}
    for repeat in range(repeats + 2):
        measured = {
            "compute": timed(local_backward),
            "step": timed(backward),
            "communication": timed(lambda: dist.all_reduce(buffer)),
        }
        if repeat >= 2:
            for key, value in measured.items():
                times[key].append(value)
    return {key: statistics.median(values) for key, values in times.items()}


def shards_worker(
    rank: int,
    world_size: int,
    device: torch.device,
    *,
    n: int,
    batch_size: int,
    epochs: int,
    seed: int = 0,
) -> list[list[list[int]]]:
    """The sample indices each batch of each epoch gives this process.

    Every process builds its own :class:`lib.data.BatchLoader` over the indices
    ``0, ..., n - 1`` with the same seed; nothing is communicated.

    Returns:
        ``[epoch][batch]`` lists of sample indices.
    """
    ids = torch.arange(n)
    loader = BatchLoader(ids, ids, batch_size=batch_size, seed=seed, rank=rank, world_size=world_size)
    return [[batch.tolist() for batch, _ in loader] for _ in range(epochs)]
