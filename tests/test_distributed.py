"""Data parallelism: BatchLoader's shards, and torch.distributed processes (gloo, 2 on the CPU).

The process tests start real processes (``lib.distributed.launch``) with the gloo backend,
rendezvous on 127.0.0.1; the first launch starts torch's fork server (a few seconds), the
later ones take a fraction of a second each. The tests whose workers build a
``DistributedDataParallel`` model (which imports torch's compiler stack in every process,
seconds of CPU time each) are marked ``slow``: they run in the full suite and in CI. The
workers that fail on purpose live here: the processes import this module to find them.
"""

import math
import os
import socket
import time

import pytest
import torch
import torch.distributed as dist
from torch import nn

import lib
from lib import distributed
from lib.data import BatchLoader, RandomShiftRotate, TensorData
from lib.train import fit

#: float64 gradients: one all_reduce adds W per-process means, so the result differs from
#: the single-process sum by a few roundings of the gradient's size, far below this.
GRADIENT_TOLERANCE = 1e-12


def small_model(seed: int = 0, norm: str | None = None) -> nn.Module:
    lib.seed(seed)
    return lib.models.mlp(8, 16, 1, 3, norm=norm).double()


def small_data(n: int, seed: int = 0) -> TensorData:
    gen = torch.Generator().manual_seed(seed)
    return TensorData(
        torch.randn(n, 8, generator=gen, dtype=torch.float64), torch.randint(0, 3, (n,), generator=gen)
    )


# ------------------------------------------------------------------- BatchLoader shards


def shares(
    n: int, batch_size: int, world_size: int, epochs: int = 2, **kwargs
) -> list[list[list[list[int]]]]:
    """[rank][epoch][batch] sample ids, from one loader per rank."""
    ids = torch.arange(n)
    loaders = [
        BatchLoader(ids, ids, batch_size=batch_size, seed=3, rank=r, world_size=world_size, **kwargs)
        for r in range(world_size)
    ]
    return [[[b.tolist() for b, _ in loader] for _ in range(epochs)] for loader in loaders]


@pytest.mark.parametrize(("n", "batch_size", "world_size"), [(12, 4, 2), (11, 4, 3), (9, 3, 3), (7, 7, 1)])
def test_batchloader_shards_cover_every_sample_once_per_epoch(n, batch_size, world_size):
    per_rank = shares(n, batch_size, world_size)
    single = shares(n, batch_size, 1)[0]
    for epoch in range(2):
        seen = sorted(i for rank in per_rank for batch in rank[epoch] for i in batch)
        assert seen == list(range(n))
        # the shares of each step together are the single-process batch of that step
        for step, batch in enumerate(single[epoch]):
            together = sorted(i for rank in per_rank for i in rank[epoch][step])
            assert together == sorted(batch)
        # every rank makes the same number of steps, and the shares differ by at most one sample
        assert len({len(rank[epoch]) for rank in per_rank}) == 1
        for step in range(len(single[epoch])):
            sizes = [len(rank[epoch][step]) for rank in per_rank]
            assert max(sizes) - min(sizes) <= 1 and min(sizes) >= 1
    assert single[0] != single[1]  # a new shuffle every epoch, the same one on every rank


def test_batchloader_without_shuffle_and_with_drop_last():
    ids = torch.arange(10)
    loader = BatchLoader(ids, ids, batch_size=4, shuffle=False, drop_last=True, rank=1, world_size=2)
    assert [b.tolist() for b, _ in loader] == [[1, 3], [5, 7]]


def test_batchloader_checks_rank_and_world_size():
    ids = torch.arange(10)
    with pytest.raises(ValueError, match=r"^rank must be an integer in \[0, 1\], got 2$"):
        BatchLoader(ids, ids, batch_size=4, rank=2, world_size=2)
    with pytest.raises(ValueError, match=r"^world_size must be an integer >= 1, got 0$"):
        BatchLoader(ids, ids, batch_size=4, world_size=0)
    with pytest.raises(
        ValueError, match=r"world_size must be <= batch_size .* got world_size=5 > batch_size=4"
    ):
        BatchLoader(ids, ids, batch_size=4, world_size=5)
    with pytest.raises(
        ValueError, match=r"last batch of an epoch holds 2 samples .* world_size=3.*drop_last=True"
    ):
        BatchLoader(ids, ids, batch_size=4, world_size=3)
    assert len(BatchLoader(ids, ids, batch_size=4, world_size=3, drop_last=True)) == 2


# ------------------------------------------------------------------ processes (gloo, CPU)


@pytest.mark.slow  # DistributedDataParallel: seconds of imports in each process
def test_all_reduced_gradient_equals_the_whole_batch_gradient():
    model, (x, y) = small_model(), small_data(24)
    loss_fn = nn.CrossEntropyLoss()
    grads = distributed.launch(
        distributed.gradient_worker, 2, device="cpu", model=model, x=x, y=y, loss_fn=loss_fn
    )
    loss_fn(model(x), y).backward()
    whole = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    for grad in grads:
        assert grad.dtype == torch.float64
        assert (grad - whole).abs().max() <= GRADIENT_TOLERANCE * whole.abs().max()


def test_shards_across_processes_cover_every_sample_once_per_epoch():
    n, batch_size = 20, 6  # the last batch (2 samples) still gives each of 2 processes one
    per_rank = distributed.launch(
        distributed.shards_worker, 2, device="cpu", n=n, batch_size=batch_size, epochs=3, seed=3
    )
    assert per_rank == shares(n, batch_size, 2, epochs=3)  # the processes agree with in-process loaders
    orders = []
    for epoch in range(3):
        assert sorted(i for rank in per_rank for batch in rank[epoch] for i in batch) == list(range(n))
        orders.append(
            [
                i
                for step in zip(*(rank[epoch] for rank in per_rank), strict=True)
                for i in sorted(sum(step, []))
            ]
        )
    assert len({tuple(order) for order in orders}) == 3  # a new order every epoch


def image_model(seed: int = 0) -> nn.Module:
    lib.seed(seed)
    return nn.Sequential(nn.Flatten(), lib.models.mlp(8, 16, 1, 3)).double()


@pytest.mark.slow  # DistributedDataParallel: seconds of imports in each process
def test_fit_in_processes_follows_the_single_process_run():
    # plain inputs, and 2x4 "images" augmented by RandomShiftRotate: each process applies the
    # augmentations the single process gives its samples (before, every rank replayed rows 0, 1, ...)
    x, y = small_data(48, seed=1)
    runs = {
        "plain": dict(model=small_model(), train=TensorData(x, y)),
        "augmented": dict(
            model=image_model(),
            train=TensorData(x.reshape(48, 1, 2, 4), y),
            augment=dict(max_shift=0.5, max_degrees=20.0, seed=2),
        ),
    }
    kwargs = dict(
        lr=0.3, epochs=3, batch_size=8, seed=5, schedule=("linear_warmup", {"lr": 0.3, "warmup_steps": 4})
    )
    tasks = [(distributed.fit_worker, dict(record_params=True, **run, **kwargs)) for run in runs.values()]
    per_rank = distributed.launch(distributed.sequence, 2, device="cpu", tasks=tasks)
    for i, run in enumerate(runs.values()):
        single = distributed.fit_worker(0, 1, torch.device("cpu"), record_params=True, **run, **kwargs)
        histories = [results[i] for results in per_rank]
        for history in histories:  # every rank keeps the same history: the global batch's
            assert history.steps == single.steps == 3 * 6
            torch.testing.assert_close(history.step_loss, single.step_loss, rtol=1e-6, atol=0)  # float32
            torch.testing.assert_close(history.step_lr, single.step_lr, rtol=0, atol=0)
            torch.testing.assert_close(history.epoch_train_acc, single.epoch_train_acc, rtol=0, atol=0)
            for ours, theirs in zip(history.records["params"], single.records["params"], strict=True):
                assert (ours - theirs).abs().max() <= 1e-12  # float64 parameters, epoch by epoch
        assert histories[0].step_loss == histories[1].step_loss


def recording_fit_worker(rank, world_size, device, *, model, train, batch_size, epochs, seed):
    """fit on a DDP model, recording the input batches this process trains on (via ``transform``)."""
    seen = []

    def record(xb):
        seen.append(xb.clone())
        return xb

    ddp = distributed._ddp(model, device)
    fit(
        ddp,
        torch.optim.SGD(ddp.parameters(), lr=0.1),
        nn.CrossEntropyLoss(),
        train,
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        transform=record,
        progress=False,
    )
    return seen


@pytest.mark.slow  # DistributedDataParallel: seconds of imports in each process
def test_fit_in_processes_trains_each_process_on_its_share_only():
    # the equality of a DDP run with the single-process run would also hold if every process
    # took the whole batch; this checks that fit gives process r the samples r, r + W, ...
    train = small_data(48, seed=2)
    kwargs = dict(batch_size=8, epochs=2, seed=4)
    seen = distributed.launch(
        recording_fit_worker, 2, device="cpu", model=small_model(), train=train, **kwargs
    )
    for rank, batches in enumerate(seen):
        loader = BatchLoader(*train, batch_size=8, seed=4, rank=rank, world_size=2)
        expected = [xb for _ in range(2) for xb, _ in loader]
        assert len(batches) == len(expected) == 2 * 6
        for ours, theirs in zip(batches, expected, strict=True):
            assert ours.shape[0] == 4
            torch.testing.assert_close(ours, theirs, rtol=0, atol=0)
    assert not torch.equal(seen[0][0], seen[1][0])  # the two processes' shares differ


def plain_fit_worker(rank, world_size, device, *, model, train):
    """fit on a model that is not wrapped in DDP: refused."""
    return fit(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1),
        nn.CrossEntropyLoss(),
        train,
        epochs=1,
        batch_size=8,
    )


def test_fit_in_processes_needs_a_ddp_model():
    with pytest.raises(
        distributed.WorkerError, match=r"worker rank \d failed: ValueError: .*DistributedDataParallel"
    ):
        distributed.launch(plain_fit_worker, 2, device="cpu", model=small_model(), train=small_data(16))


@pytest.mark.slow  # DistributedDataParallel: seconds of imports in each process
def test_world_size_larger_than_the_batch_is_refused():
    model, (x, y) = small_model(), small_data(3)
    with pytest.raises(
        distributed.WorkerError, match=r"world_size must be <= the batch size .* world_size=4 > 3"
    ):
        distributed.launch(
            distributed.gradient_worker, 4, device="cpu", model=model, x=x, y=y, loss_fn=nn.MSELoss()
        )
    with pytest.raises(distributed.WorkerError, match=r"world_size must be <= batch_size"):
        distributed.launch(
            distributed.fit_worker,
            2,
            device="cpu",
            model=model,
            train=small_data(8),
            lr=0.1,
            epochs=1,
            batch_size=1,
        )


def test_a_startup_failure_is_reported_with_its_cause_and_the_environment_is_left_alone(monkeypatch):
    # a process that cannot join the group (here gloo, told to use an interface that does not
    # exist) names its rank and the cause; before, init_process_group ran outside the error
    # record and launch said only "died with exit code 1"
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "no-such-interface")
    before = dict(os.environ)
    with pytest.raises(distributed.WorkerError, match=r"^worker rank \d failed: .*no-such-interface"):
        distributed.launch(
            distributed.shards_worker, 2, device="cpu", n=4, batch_size=2, epochs=1, timeout=30
        )
    assert dict(os.environ) == before
    monkeypatch.delenv("GLOO_SOCKET_IFNAME")
    before = dict(os.environ)
    distributed.launch(distributed.shards_worker, 2, device="cpu", n=4, batch_size=2, epochs=1)
    assert dict(os.environ) == before  # the loopback interface was set in the workers only


def test_the_default_rendezvous_picks_no_port(monkeypatch):
    # the processes meet through a file, so no TCP port is chosen in the caller, none can be
    # taken by another program between the choice and the bind (the old free_port() could)
    bind = socket.socket.bind

    def no_tcp_port(sock, address):
        assert sock.family != socket.AF_INET, f"launch bound a TCP port: {address}"
        return bind(sock, address)

    monkeypatch.setattr(socket.socket, "bind", no_tcp_port)
    ids = distributed.launch(distributed.shards_worker, 2, device="cpu", n=4, batch_size=2, epochs=1)
    assert sorted(i for rank in ids for batch in rank[0] for i in batch) == [0, 1, 2, 3]


def _time_wait_port() -> int:
    """A port of 127.0.0.1 whose last connection is in TIME_WAIT, as a finished run's store leaves it
    (its server socket, like torch's TCP store, set SO_REUSEADDR; the server side closed first)."""
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        with socket.create_connection(("127.0.0.1", port)) as client:
            accepted, _ = server.accept()
            accepted.close()  # the server side closes first: its end waits in TIME_WAIT
            client.recv(1)
    return port


def test_a_port_in_use_is_refused_and_one_in_time_wait_is_taken():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ValueError, match=rf"^port {port} on 127.0.0.1 is in use .*pass port=None"):
            distributed.launch(
                distributed.shards_worker, 2, device="cpu", port=port, n=4, batch_size=2, epochs=1
            )
    with pytest.raises(ValueError, match=r"^port must be an integer in \[1, 65535\], got 0$"):
        distributed.launch(distributed.shards_worker, 2, device="cpu", port=0, n=4, batch_size=2, epochs=1)
    # torch's TCP store binds with SO_REUSEADDR, so a port in TIME_WAIT works (it was refused)
    port = _time_wait_port()
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # without SO_REUSEADDR: refused, so the port is in TIME_WAIT
    ids = distributed.launch(
        distributed.shards_worker, 2, device="cpu", port=port, n=4, batch_size=2, epochs=1
    )
    assert sorted(i for rank in ids for batch in rank[0] for i in batch) == [0, 1, 2, 3]


def test_launch_checks_its_arguments():
    with pytest.raises(ValueError, match=r"^world_size must be an integer >= 1, got 0$"):
        distributed.launch(distributed.shards_worker, 0, n=4, batch_size=2, epochs=1)
    with pytest.raises(ValueError, match=r"^timeout must be a finite number > 0, got 0$"):
        distributed.launch(distributed.shards_worker, 1, timeout=0, n=4, batch_size=2, epochs=1)
    if torch.cuda.device_count() < 64:
        with pytest.raises(ValueError, match=r"world_size=64 on CUDA needs one GPU per process"):
            distributed.launch(distributed.shards_worker, 64, device="cuda", n=4, batch_size=2, epochs=1)


def dying_worker(rank, world_size, device):
    """Rank 1 dies at once; rank 0 waits for it in a collective that will never complete."""
    if rank == 1:
        os._exit(3)
    dist.barrier()


def raising_worker(rank, world_size, device):
    if rank == 1:
        raise RuntimeError("rank 1 gives up")
    dist.barrier()


def sleeping_worker(rank, world_size, device):
    time.sleep(60)


def test_a_dying_worker_stops_the_others_with_its_rank():
    start = time.monotonic()
    with pytest.raises(distributed.WorkerError, match=r"^worker rank 1 died with exit code 3") as info:
        distributed.launch(dying_worker, 2, device="cpu", timeout=30)
    assert info.value.rank == 1
    with pytest.raises(
        distributed.WorkerError, match=r"^worker rank 1 failed: RuntimeError: rank 1 gives up"
    ):
        distributed.launch(raising_worker, 2, device="cpu", timeout=30)
    assert time.monotonic() - start < 30  # nobody waited for the collective's timeout


def test_a_run_past_the_timeout_is_stopped():
    start = time.monotonic()
    with pytest.raises(
        distributed.WorkerError, match=r"did not finish within timeout=2 s .*ranks still running: \[0, 1\]"
    ):
        distributed.launch(sleeping_worker, 2, device="cpu", timeout=2)
    assert time.monotonic() - start < 20


@pytest.mark.slow  # DistributedDataParallel: seconds of imports in each process
def test_sequence_and_timing_worker_in_one_launch():
    model, (x, y) = small_model(), small_data(16)
    tasks = [
        (distributed.timing_worker, dict(model=model, x=x, y=y, loss_fn=nn.CrossEntropyLoss(), repeats=3)),
        (distributed.shards_worker, dict(n=4, batch_size=2, epochs=1)),
    ]
    (timing, ids), _ = distributed.launch(distributed.sequence, 2, device="cpu", tasks=tasks)
    assert set(timing) == {"compute", "step", "communication"}
    assert all(math.isfinite(t) and t > 0 for t in timing.values())
    assert len(ids) == 1 and [len(batch) for batch in ids[0]] == [1, 1]  # one epoch, 2 steps, 1 sample each


@pytest.mark.cuda
def test_nccl_world_size_one():
    model, (x, y) = small_model(), small_data(8)
    loss_fn = nn.CrossEntropyLoss()
    (grad,) = distributed.launch(
        distributed.gradient_worker, 1, device="cuda", model=model, x=x, y=y, loss_fn=loss_fn
    )
    loss_fn(model(x), y).backward()
    whole = torch.cat([p.grad.reshape(-1) for p in model.parameters()])
    assert (grad - whole).abs().max() <= 1e-10 * whole.abs().max()


def test_each_process_augments_its_share_as_one_process_would():
    # every rank draws the whole batch's augmentations and applies its own rows: the shares,
    # put back together, are the single-process batch (before, every rank replayed rows 0, 1, ...)
    images = torch.rand(12, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    ids = torch.arange(12)

    def batches(rank, world_size):
        transform = RandomShiftRotate(max_shift=1.0, max_degrees=20.0, seed=3)
        loader = BatchLoader(
            images, ids, batch_size=6, seed=1, transform=transform, rank=rank, world_size=world_size
        )
        return [(xb, yb) for _ in range(2) for xb, yb in loader]

    single = batches(0, 1)
    shares = [batches(rank, 2) for rank in range(2)]
    for step, (xb, yb) in enumerate(single):
        for rank in range(2):
            share_x, share_y = shares[rank][step]
            torch.testing.assert_close(share_y, yb[rank::2], rtol=0, atol=0)
            torch.testing.assert_close(share_x, xb[rank::2], rtol=0, atol=0)
