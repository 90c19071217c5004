"""The numeric platform: one portable choice of CPU kernels, and a record of what decides outputs.

A float sum depends on the order of its terms, and the order depends on the kernel that
computes it: PyTorch picks its CPU kernels by the instruction set of the processor
(AVX2 or AVX-512), so do MKL, oneDNN and NumPy's OpenBLAS, and every thread count splits
sums differently. The same notebook, with the same seeds, therefore prints other numbers on
two x86 machines: the last digits of one sum, and more after many training steps.

``pin_portable_kernels()`` caps every one of those choices at AVX2 and two threads, the
kernels that any x86-64 CPU with AVX2 runs (Intel since 2013, AMD since 2015). It works
through environment variables that the libraries read once, when they load, so it must
run before PyTorch and NumPy are imported: importing ``lib`` calls it first thing. A
variable already set in the environment is left as it is, so the reader keeps the last
word (``OMP_NUM_THREADS=8 jupyter lab`` asks every library for 8 threads; PyTorch stops
at the number of cores), and
``LIB_KERNELS=native`` leaves the kernels to each library's own choice for this CPU (the
thread counts stay pinned).

``platform_record()`` lists what decides a notebook's exact outputs: the machine, the
Python and library versions, PyTorch's and NumPy's kernels, PyTorch's thread count and the
device. The book stores
it in each notebook when the notebook is executed; the tests reproduce the stored outputs
byte for byte only where the record here equals the stored one, and elsewhere check the
claims (every assert) without comparing outputs.
"""

import os
import platform
from importlib import metadata

__all__ = [
    "AVX2_KERNELS",
    "KERNELS_ENV_VAR",
    "PORTABLE_THREADS",
    "THREAD_VARS",
    "differences",
    "pin_portable_kernels",
    "pinned_by_lib",
    "platform_record",
    "portable_env",
]

#: Threads for PyTorch's intra-op pool (OpenMP), MKL and OpenBLAS.
PORTABLE_THREADS = 2
#: The variables that set those thread counts, read when each library loads.
THREAD_VARS = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")

#: Environment variables that cap each library's kernels at AVX2 (read when the library loads).
AVX2_KERNELS = {
    "ATEN_CPU_CAPABILITY": "avx2",  # PyTorch's own CPU kernels
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",  # MKL, PyTorch's BLAS and LAPACK on x86
    "ONEDNN_MAX_CPU_ISA": "AVX2",  # oneDNN, PyTorch's convolutions on the CPU
    "OPENBLAS_CORETYPE": "Haswell",  # NumPy's OpenBLAS: its AVX2 kernels
}

_pinned: set[str] = set()  # the variables pin_portable_kernels set in this process

#: Set to ``native`` to leave the CPU kernels to each library's own choice.
KERNELS_ENV_VAR = "LIB_KERNELS"

#: The libraries whose versions decide the outputs, by distribution name.
DISTRIBUTIONS = ("torch", "numpy", "scipy", "scikit-learn", "matplotlib", "mnist1d")


def _has_avx2() -> bool:
    """Whether this CPU runs AVX2 and FMA instructions (read from Linux's /proc/cpuinfo)."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
                    return "avx2" in flags and "fma" in flags
    except OSError:
        pass
    return False


def portable_env() -> dict[str, str]:
    """The environment variables of the portable numeric mode on this machine.

    The thread counts everywhere; the AVX2 caps on x86-64 Linux CPUs that have AVX2 and FMA,
    unless ``LIB_KERNELS=native``. They are left out where /proc/cpuinfo does not show both
    (on a CPU without AVX2 they would select kernels it cannot run; macOS and Windows have
    no /proc/cpuinfo).

    Raises:
        ValueError: if ``LIB_KERNELS`` is set to anything but ``native``.
    """
    kernels = os.environ.get(KERNELS_ENV_VAR, "").strip()
    if kernels not in ("", "native"):
        raise ValueError(f"{KERNELS_ENV_VAR}={kernels!r}: use 'native' or leave it unset")
    env = dict.fromkeys(THREAD_VARS, str(PORTABLE_THREADS))
    if kernels != "native" and platform.machine().lower() in ("x86_64", "amd64") and _has_avx2():
        env.update(AVX2_KERNELS)
    return env


def pin_portable_kernels() -> None:
    """Set the portable mode's variables (those not already set) before the libraries load.

    Called by ``import lib``. In a process that already imported PyTorch or NumPy it comes
    too late for them; the variables still reach the processes this one starts.
    """
    env = portable_env()
    if "OMP_NUM_THREADS" in os.environ:  # the reader's thread count holds for every library
        env.update(dict.fromkeys(THREAD_VARS, os.environ["OMP_NUM_THREADS"]))
    for name, value in env.items():
        if name not in os.environ:
            os.environ[name] = value
            _pinned.add(name)


def pinned_by_lib() -> frozenset[str]:
    """The variables that ``pin_portable_kernels`` set in this process (not those already set)."""
    return frozenset(_pinned)


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


def _torch_blas(config: str) -> str:
    """The BLAS PyTorch was built with, from ``torch.__config__.show()``."""
    for line in config.splitlines():
        if "Math Kernel Library Version" in line:
            return "MKL " + line.split("Version", 1)[1].split()[0]
    for line in config.splitlines():
        if "BLAS_INFO=" in line:
            return line.split("BLAS_INFO=", 1)[1].split(",")[0]
    return "unknown"


def _numpy_blas() -> str:
    """NumPy's BLAS: library, version and the kernel it chose for this CPU."""
    try:
        import numpy  # noqa: F401  (loads the BLAS, so that threadpoolctl sees it)
        from threadpoolctl import threadpool_info
    except ImportError:
        return "unknown"
    for pool in threadpool_info():
        if pool["user_api"] == "blas":
            return " ".join(
                str(pool[key]) for key in ("internal_api", "version", "architecture") if pool.get(key)
            )
    return "none"


def platform_record() -> dict[str, str]:
    """What decides the exact outputs of a notebook run in this process.

    Returns:
        A flat dictionary of strings, with the processor architecture, the Python and
        library versions, PyTorch's CPU kernels and BLAS, NumPy's BLAS kernel, the thread
        count and the device ``lib.get_device()`` picks.
    """
    import torch

    from lib.device import get_device

    record = {
        "machine": platform.machine().lower(),
        "python": ".".join(platform.python_version_tuple()[:2]),
        **{name: _version(name) for name in DISTRIBUTIONS},
        "torch CPU kernels": torch.backends.cpu.get_cpu_capability(),
        "torch BLAS": _torch_blas(torch.__config__.show()),
        "numpy BLAS": _numpy_blas(),
        "threads": str(torch.get_num_threads()),
        "device": get_device().type,
    }
    if record["device"] == "cuda":
        record["GPU"] = torch.cuda.get_device_name()
    return record


def differences(stored: dict[str, str], here: dict[str, str]) -> list[str]:
    """Each entry where two platform records differ, as ``'name: stored -> here'``."""
    return [
        f"{name}: {stored.get(name, 'not recorded')} -> {here.get(name, 'not recorded')}"
        for name in sorted(set(stored) | set(here))
        if stored.get(name) != here.get(name)
    ]
