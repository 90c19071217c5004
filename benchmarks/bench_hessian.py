"""Benchmark of lib.hessian on a network with about a million parameters.

Measures, in one run and on one device:

1. the cost of a Hessian-vector product relative to a gradient, both when the gradient's
   graph is reused (``HVPOperator``, the way ``eigsh`` works) and when every product
   recomputes it (a new ``HVPOperator`` per product);
2. the top Hessian eigenvalue to relative accuracy 1e-4 by Lanczos and by power iteration,
   counting Hessian-vector products and seconds for each.

The reference eigenvalue comes from a Lanczos run with a tight tolerance; each method then
runs until its estimate is within 1e-4 (relative) of it. Run::

    python benchmarks/bench_hessian.py              # CPU
    python benchmarks/bench_hessian.py --device cuda
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

import lib
from lib import hessian as H


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds(fn: Callable[[], object], device: torch.device, repeats: int) -> float:
    """Mean wall-clock seconds of fn() over repeats, after one warm-up call."""
    fn()
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    synchronize(device)
    return (time.perf_counter() - start) / repeats


def build_problem(device: torch.device, dtype: torch.dtype, samples: int):
    """An MLP 512-1024-512-10 (about 1.06 million parameters) on a seeded teacher task."""
    lib.seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(512, 1024),
        torch.nn.Tanh(),
        torch.nn.Linear(1024, 512),
        torch.nn.Tanh(),
        torch.nn.Linear(512, 10),
    ).to(device=device, dtype=dtype)
    x = torch.randn(samples, 512, device=device, dtype=dtype)
    teacher = torch.randn(512, 10, device=device, dtype=dtype)
    y = (x @ teacher).argmax(dim=1)  # labels from a random linear teacher
    params = list(model.parameters())

    def loss() -> torch.Tensor:
        return torch.nn.functional.cross_entropy(model(x), y)

    return loss, params


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:N or mps (default cpu)")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument("--samples", type=int, default=128, help="data points in the loss (default 128)")
    parser.add_argument("--rtol", type=float, default=1e-4, help="target relative accuracy (default 1e-4)")
    parser.add_argument("--max-power-iter", type=int, default=1000)
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype = getattr(torch, args.dtype)
    torch.set_grad_enabled(True)

    loss, params = build_problem(device, dtype, args.samples)
    n = sum(p.numel() for p in params)
    print(f"device {device}, {args.dtype}, MLP with {n:,} parameters, {args.samples} samples")

    # 1. cost of one product relative to one gradient
    repeats = 5
    t_grad = seconds(lambda: torch.autograd.grad(loss(), params), device, repeats)
    t_graph = seconds(lambda: H.HVPOperator(loss, params), device, repeats)
    op = H.HVPOperator(loss, params)
    v = torch.randn(n, device=device, dtype=dtype)
    t_product = seconds(lambda: op(v), device, repeats)
    t_hvp = seconds(lambda: H.HVPOperator(loss, params)(v), device, repeats)  # a graph per product
    print(f"gradient                          {t_grad * 1e3:8.1f} ms   1.00 x")
    print(f"gradient with graph kept          {t_graph * 1e3:8.1f} ms   {t_graph / t_grad:.2f} x")
    print(f"HVP reusing the graph (each)      {t_product * 1e3:8.1f} ms   {t_product / t_grad:.2f} x")
    print(f"HVP from scratch (new operator)   {t_hvp * 1e3:8.1f} ms   {t_hvp / t_grad:.2f} x")

    # 2. reference top eigenvalue (largest magnitude, which power iteration finds)
    v0 = torch.randn(n, device=device, dtype=dtype, generator=torch.Generator(device=device).manual_seed(1))
    reference, _ = H.lanczos(op, v0, k=1, which="LM", tol=1e-5, max_iter=150)
    reference = reference.item()
    print(f"reference top eigenvalue {reference:.6g} (Lanczos, residual tol 1e-5)")

    def close_enough(estimate: float) -> bool:
        return abs(estimate - reference) <= args.rtol * abs(reference)

    results = {}
    for name in ("Lanczos", "power iteration"):
        op = H.HVPOperator(loss, params)
        synchronize(device)
        start = time.perf_counter()
        if name == "Lanczos":
            values, _ = H.lanczos(
                op, v0, k=1, which="LM", max_iter=300, callback=lambda j, ritz: close_enough(ritz[0].item())
            )
            estimate = values[0].item()
        else:
            estimate, _ = H.power_method(
                op, v0, max_iter=args.max_power_iter, tol=None, callback=lambda t, value: close_enough(value)
            )
        synchronize(device)
        elapsed = time.perf_counter() - start
        results[name] = (op.num_products, elapsed, estimate)
        status = "" if close_enough(estimate) else f"  (did not reach {args.rtol:g})"
        error = abs(estimate - reference) / abs(reference)
        print(
            f"{name:16s} {op.num_products:5d} HVPs  {elapsed:7.2f} s  "
            f"estimate {estimate:.6g}  relative error {error:.1e}{status}"
        )
    (lz_n, lz_t, _), (pw_n, pw_t, _) = results["Lanczos"], results["power iteration"]
    print(f"power iteration / Lanczos: {pw_n / lz_n:.1f} x the products, {pw_t / lz_t:.1f} x the seconds")

    # Lanczos stopping on its own residual bound, as eigsh does (no oracle)
    op = H.HVPOperator(loss, params)
    start = time.perf_counter()
    values, _ = H.lanczos(op, v0, k=1, which="LM", tol=args.rtol, max_iter=300)
    synchronize(device)
    elapsed = time.perf_counter() - start
    error = abs(values[0].item() - reference) / abs(reference)
    print(f"Lanczos, own stopping rule (residual <= {args.rtol:g} |lambda|): {op.num_products} HVPs, "
          f"{elapsed:.2f} s, relative error {error:.1e}")  # fmt: skip


if __name__ == "__main__":
    main()
