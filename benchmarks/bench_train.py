"""Overhead of ``lib.train.fit`` against a minimal hand-written PyTorch loop.

Both loops train the same MLP (from the same initial weights) on the same MNIST-1D
training split with the same optimizer, batch size and batch order; the reference loop
does only what any training loop must do: index a batch, forward, loss, zero the
gradients, backward, step. ``fit`` additionally records the loss, learning rate,
gradient norm and accuracy of every step and checks for divergence.

Run::

    python benchmarks/bench_train.py               # CPU
    python benchmarks/bench_train.py --device cuda

It prints the best time per epoch of each loop over several repeats (interleaved, so
that both see the same machine load; the minimum is the figure least disturbed by other
processes) and their ratio fit / reference, whose target is at most 1.10; then the same
ratio in process CPU time, which other processes on a busy machine disturb less; then how
often ``fit`` waited for the device: its copies to the host (``lib.train._to_host``, the
only place it synchronises) per epoch, against the steps per epoch.
"""

from __future__ import annotations

import argparse
import time

import torch
from torch import nn

import lib
import lib.train
from lib.data import load_mnist1d
from lib.models import mlp
from lib.train import fit


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def reference_loop(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    batch_size: int,
) -> None:
    """The minimal loop: shuffle with a seeded generator, then forward, backward, step."""
    loss_fn = nn.CrossEntropyLoss()
    generator = torch.Generator().manual_seed(0)
    model.train()
    for _ in range(epochs):
        order = torch.randperm(x.shape[0], generator=generator).to(x.device)
        for start in range(0, x.shape[0], batch_size):
            index = order[start : start + batch_size]
            loss = loss_fn(model(x[index]), y[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default: cpu)")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per timed run (default: 3)")
    parser.add_argument("--repeats", type=int, default=15, help="timed runs of each loop (default: 15)")
    parser.add_argument("--batch-size", type=int, default=64, help="samples per step (default: 64)")
    parser.add_argument("--width", type=int, default=128, help="hidden units per layer (default: 128)")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)

    device = torch.device(args.device)
    lib.seed(0)
    data = load_mnist1d(device=device)
    x, y = data.train
    template = mlp(40, args.width, 2, 10, device=device)
    initial = {k: v.clone() for k, v in template.state_dict().items()}

    def fresh() -> tuple[nn.Module, torch.optim.Optimizer]:
        model = mlp(40, args.width, 2, 10, device=device)
        model.load_state_dict(initial)
        return model, torch.optim.Adam(model.parameters(), lr=1e-3)

    def time_reference() -> tuple[float, float]:
        model, optimizer = fresh()
        _sync(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        reference_loop(model, optimizer, x, y, args.epochs, args.batch_size)
        _sync(device)
        return time.perf_counter() - start, time.process_time() - cpu_start

    def time_fit() -> tuple[float, float]:
        model, optimizer = fresh()
        _sync(device)
        start, cpu_start = time.perf_counter(), time.process_time()
        fit(
            model,
            optimizer,
            nn.CrossEntropyLoss(),
            data.train,
            epochs=args.epochs,
            batch_size=args.batch_size,
            progress=False,
        )
        _sync(device)
        return time.perf_counter() - start, time.process_time() - cpu_start

    time_reference(), time_fit()  # warm-up
    reference, ours = [], []
    for _ in range(args.repeats):
        reference.append(time_reference())
        ours.append(time_fit())
    ref_epoch = min(wall for wall, _ in reference) / args.epochs
    fit_epoch = min(wall for wall, _ in ours) / args.epochs
    cpu_ratio = min(cpu for _, cpu in ours) / min(cpu for _, cpu in reference)
    steps = -(-x.shape[0] // args.batch_size)
    print(
        f"device {device}, MLP 40-{args.width}-{args.width}-10, "
        f"batch {args.batch_size}, {steps} steps per epoch"
    )
    print(f"reference loop: {ref_epoch * 1e3:.1f} ms per epoch ({ref_epoch / steps * 1e6:.0f} us per step)")
    print(f"lib.train.fit:  {fit_epoch * 1e3:.1f} ms per epoch ({fit_epoch / steps * 1e6:.0f} us per step)")
    print(f"ratio fit / reference: {fit_epoch / ref_epoch:.3f} (target <= 1.10)")
    print(f"ratio of process CPU time (less sensitive to other load): {cpu_ratio:.3f}")

    copies = 0
    to_host = lib.train._to_host

    def counted(values: dict[str, torch.Tensor]) -> dict[str, list[float]]:
        nonlocal copies
        copies += 1
        return to_host(values)

    lib.train._to_host = counted
    try:
        time_fit()
    finally:
        lib.train._to_host = to_host
    print(
        f"host syncs of fit: {copies / args.epochs:g} per epoch of {steps} steps "
        "(after every 32 steps and at the end of the epoch)"
    )


if __name__ == "__main__":
    main()
