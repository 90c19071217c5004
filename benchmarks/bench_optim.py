"""Time one optimizer step of every ``lib.optim`` optimizer against ``torch.optim``.

For each optimizer and each of two models (many small tensors; a few large ones), the
``lib`` step, torch's for-loop step (``foreach=False``) and torch's foreach step are timed
in the same run, interleaved, on identical parameters and gradients. The script prints
the median time per step, the ratios lib / for-loop and lib / foreach, and the largest
parameter difference between lib and the for-loop after the same steps (the parity error).
``Lookahead`` (around lib's Adam) and ``SWATS`` (in its Adam phase) have no torch
counterpart and are compared with torch's Adam for-loop step: their ratios are the cost
of the wrapper.

Run: ``python benchmarks/bench_optim.py [--device cuda] [--steps 10] [--repeats 5] [--threads 1]``.
The target is a lib / for-loop ratio of at most 1.2 on CPU.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

import lib.optim as lo

# name -> (lib factory, torch class name or None, keyword settings)
OPTIMIZERS = {
    "SGD": (lo.SGD, "SGD", dict(lr=1e-3, momentum=0.9, weight_decay=1e-4)),
    "Adagrad": (lo.Adagrad, "Adagrad", dict(lr=1e-2)),
    "RMSprop": (lo.RMSprop, "RMSprop", dict(lr=1e-3, momentum=0.9)),
    "Adadelta": (lo.Adadelta, "Adadelta", dict()),
    "Adam": (lo.Adam, "Adam", dict(lr=1e-3)),
    "AdamW": (lo.AdamW, "AdamW", dict(lr=1e-3)),
    "RAdam": (lo.RAdam, "RAdam", dict(lr=1e-3)),
    "NAdam": (lo.NAdam, "NAdam", dict(lr=1e-3)),
    "Lookahead(Adam)": (lambda p, **kw: lo.Lookahead(lo.Adam(p, **kw)), "Adam", dict(lr=1e-3)),
    # switch_tol=0 keeps SWATS in its Adam phase, the costly one (it measures a projection)
    "SWATS": (lambda p, **kw: lo.SWATS(p, switch_tol=0.0, **kw), "Adam", dict(lr=1e-3)),
}

MODELS = {
    # name -> parameter shapes
    "many small (300 tensors, 0.2M)": [(32, 16)] * 150 + [(300,)] * 150,
    "few large (4 tensors, 1M)": [(512, 512)] * 4,
}


def make_params(shapes, device: str) -> list[torch.Tensor]:
    """Parameters with fixed gradients (the same for every implementation)."""
    gen = torch.Generator().manual_seed(0)
    params = []
    for shape in shapes:
        p = torch.randn(shape, generator=gen).to(device).requires_grad_()
        p.grad = torch.randn(shape, generator=gen).to(device)
        params.append(p)
    return params


def time_steps(opt: torch.optim.Optimizer, steps: int, device: str) -> float:
    """Seconds per step, averaged over ``steps`` consecutive steps."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(steps):
        opt.step()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / steps


def bench(name: str, shapes, device: str, steps: int, repeats: int) -> dict[str, float]:
    """Median step times of lib, torch for-loop and torch foreach, and the parity error."""
    factory, torch_name, kwargs = OPTIMIZERS[name]
    torch_cls = getattr(torch.optim, torch_name)
    params = {key: make_params(shapes, device) for key in ("lib", "loop", "foreach")}
    opts = {
        "lib": factory(params["lib"], **kwargs),
        "loop": torch_cls(params["loop"], foreach=False, **kwargs),
        "foreach": torch_cls(params["foreach"], foreach=True, **kwargs),
    }
    for opt in opts.values():  # create the state, warm the allocator
        for _ in range(3):
            opt.step()
    times = {key: [] for key in opts}
    for _ in range(repeats):
        for key, opt in opts.items():
            times[key].append(time_steps(opt, steps, device))
    result = {key: statistics.median(values) for key, values in times.items()}
    same_rule = torch_name == name or name == "AdamW"
    result["parity"] = (
        max((p - q).abs().max().item() for p, q in zip(params["lib"], params["loop"], strict=True))
        if same_rule
        else float("nan")
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=5, help="timed blocks per implementation")
    parser.add_argument("--only", nargs="*", default=None, help="optimizer names to run")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: steady on a busy machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}")
    worst = 0.0
    for model, shapes in MODELS.items():
        print(f"\n{model}")
        print(
            f"{'optimizer':<16} {'lib ms':>8} {'loop ms':>8} {'foreach ms':>10} "
            f"{'lib/loop':>9} {'lib/foreach':>12} {'parity':>9}"
        )
        for name in args.only or OPTIMIZERS:
            r = bench(name, shapes, args.device, args.steps, args.repeats)
            ratio = r["lib"] / r["loop"]
            if OPTIMIZERS[name][1] == name or name == "AdamW":
                worst = max(worst, ratio)
            print(
                f"{name:<16} {1e3 * r['lib']:8.3f} {1e3 * r['loop']:8.3f} {1e3 * r['foreach']:10.3f} "
                f"{ratio:9.2f} {r['lib'] / r['foreach']:12.2f} {r['parity']:9.1e}"
            )
    print(f"\nworst lib/loop ratio over the torch-equivalent optimizers: {worst:.2f} (target <= 1.2 on CPU)")


if __name__ == "__main__":
    main()
