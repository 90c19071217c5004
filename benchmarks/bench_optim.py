"""Time one optimizer step of every ``lib.optim`` optimizer against ``torch.optim``, in both paths.

For each optimizer and each of two models (many small tensors; a few large ones), four
steps are timed in the same run, interleaved, on identical parameters and gradients:
``lib`` and torch with ``foreach=False`` (a loop over the parameters) and with
``foreach=True`` (one multi-tensor call per formula line). The script prints the best
time per step over the repeats (the figure least disturbed by other processes; the blocks
of the four run in turn, so all see the same machine load), the ratios lib-loop /
torch-loop and lib-foreach / torch-foreach, and the largest parameter difference between
lib and torch after the same steps in each path (the
parity error, 0 on the CPU). ``Lookahead`` (around lib's Adam) and ``SWATS`` (in its Adam
phase) have no torch counterpart and are compared with torch's Adam: their ratios are the
cost of the wrapper.

Run: ``python benchmarks/bench_optim.py [--device cuda] [--steps 10] [--repeats 15] [--threads 1]``.
The target is every ratio at most 1.2 on CPU.
"""

from __future__ import annotations

import argparse
import ctypes
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


def steady_allocator() -> None:
    """Keep glibc's allocator from giving large freed blocks back to the system (Linux only).

    Otherwise each step's temporaries of 4 MB (the few large tensors) come from fresh
    pages, and whichever of two optimizers pays those page faults runs up to twice as slow
    with the very same operations: measured here, Adadelta's identical foreach steps gave
    ratios from 1.0 to 1.96 run to run, and 0.97-1.03 with this setting.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to set
        return
    m_trim_threshold, m_mmap_threshold = -1, -3  # mallopt's parameter numbers (malloc.h)
    libc.mallopt(m_mmap_threshold, 32 << 20)  # blocks up to 32 MB come from the heap ...
    libc.mallopt(m_trim_threshold, (1 << 31) - 1)  # ... and stay there when freed


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


PATHS = {"lib-loop": False, "torch-loop": False, "lib-foreach": True, "torch-foreach": True}


def bench(name: str, shapes, device: str, steps: int, repeats: int) -> dict[str, float]:
    """Best step times of lib and torch in both paths, and the parity error of each path."""
    factory, torch_name, kwargs = OPTIMIZERS[name]
    torch_cls = getattr(torch.optim, torch_name)
    params = {key: make_params(shapes, device) for key in PATHS}
    opts = {
        key: (factory if key.startswith("lib") else torch_cls)(params[key], foreach=foreach, **kwargs)
        for key, foreach in PATHS.items()
    }
    for opt in opts.values():  # create the state, warm the allocator
        for _ in range(3):
            opt.step()
    times = {key: [] for key in opts}
    for _ in range(repeats):
        for key, opt in opts.items():
            times[key].append(time_steps(opt, steps, device))
    result = {key: min(values) for key, values in times.items()}
    same_rule = torch_name == name or name == "AdamW"
    for path in ("loop", "foreach"):
        pairs = zip(params[f"lib-{path}"], params[f"torch-{path}"], strict=True)
        result[f"parity-{path}"] = (
            max((p - q).abs().max().item() for p, q in pairs) if same_rule else float("nan")
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu", help="torch device, e.g. cpu or cuda")
    parser.add_argument("--steps", type=int, default=10, help="steps per timed block")
    parser.add_argument("--repeats", type=int, default=15, help="timed blocks per implementation")
    parser.add_argument("--only", nargs="*", default=None, help="optimizer names to run")
    parser.add_argument("--threads", type=int, default=1, help="CPU threads (1: steady on a busy machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    steady_allocator()

    print(f"torch {torch.__version__}, device {args.device}, threads {torch.get_num_threads()}")
    worst = {"loop": 0.0, "foreach": 0.0}
    for model, shapes in MODELS.items():
        print(f"\n{model}")
        print(
            f"{'optimizer':<16} {'lib loop':>9} {'torch loop':>10} {'lib fe':>8} {'torch fe':>9} "
            f"{'loop ratio':>10} {'fe ratio':>9} {'parity':>9}   (ms per step; fe: foreach)"
        )
        for name in args.only or OPTIMIZERS:
            r = bench(name, shapes, args.device, args.steps, args.repeats)
            ratios = {path: r[f"lib-{path}"] / r[f"torch-{path}"] for path in worst}
            if OPTIMIZERS[name][1] == name or name == "AdamW":
                worst = {path: max(worst[path], ratios[path]) for path in worst}
            parity = max(r["parity-loop"], r["parity-foreach"])
            print(
                f"{name:<16} {1e3 * r['lib-loop']:9.3f} {1e3 * r['torch-loop']:10.3f} "
                f"{1e3 * r['lib-foreach']:8.3f} {1e3 * r['torch-foreach']:9.3f} "
                f"{ratios['loop']:10.2f} {ratios['foreach']:9.2f} {parity:9.1e}"
            )
    print(
        f"\nworst ratio over the torch-equivalent optimizers: lib-loop / torch-loop {worst['loop']:.2f}, "
        f"lib-foreach / torch-foreach {worst['foreach']:.2f} (target <= 1.2 on CPU)"
    )


if __name__ == "__main__":
    main()
