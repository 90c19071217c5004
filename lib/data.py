r"""Data for the book, all of it available offline.

Real data that ships with a dependency:

- :func:`load_digits`: scikit-learn's bundled 8x8 handwritten digits (1797 images).
- :func:`load_mnist1d`: MNIST-1D (Greydanus, 2020), generated locally by the ``mnist1d``
  package's own generator from its default seed and settings (never its downloader).

Synthetic sets, each deterministic for a given ``seed``:

- :func:`make_scaled_regression`: a linear regression whose features live on very
  different scales (feature normalization).
- :func:`make_noisy_function`: noisy samples of a 1-D function (polynomial fits, overfitting).
- :func:`make_moons`: a 2-D classification surface.
- :func:`make_shifted_moons`: a training set, a test set from the same distribution and a
  shifted test set (mismatch).

Every split is a :class:`TensorData` ``(x, y)`` named tuple; a data set with a fixed
train/validation/test split is a :class:`Splits`. :class:`BatchLoader` shuffles and
batches tensors on their device, and :class:`RandomShiftRotate` augments image batches
on the device.

Random numbers are drawn from a seeded CPU ``torch.Generator`` and the result is then
moved to ``device``, so a data set is the same on every device.
"""

import functools
import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from lib import checks

__all__ = [
    "TensorData",
    "Splits",
    "load_digits",
    "load_mnist1d",
    "make_scaled_regression",
    "make_noisy_function",
    "make_moons",  # the moons of make_shifted_moons (chapter 1), and lib.train's test task
    "ShiftedData",
    "make_shifted_moons",
    "BatchLoader",
    "RandomShiftRotate",
]

DeviceLike = torch.device | str | None


class TensorData(NamedTuple):
    """Inputs and targets of one split, as a named tuple ``(x, y)``."""

    #: The inputs, float32, one sample per row of the first dimension.
    x: Tensor
    #: The targets, int64 class labels for classification or float32 values for regression.
    y: Tensor

    def to(self, device: DeviceLike) -> "TensorData":
        """Return a copy on ``device`` (the same object's tensors if already there)."""
        return TensorData(self.x.to(device), self.y.to(device))


@dataclass(frozen=True)
class Splits:
    """A data set with a fixed train/validation/test split.

    Attributes:
        train: the training split.
        val: the validation split (for early stopping and model choice).
        test: the test split (touched once, at the end).
        num_classes: the number of classes, or ``None`` for regression.
    """

    train: TensorData
    val: TensorData
    test: TensorData
    num_classes: int | None = None

    def to(self, device: DeviceLike) -> "Splits":
        """Return a copy with every split on ``device``."""
        return Splits(self.train.to(device), self.val.to(device), self.test.to(device), self.num_classes)


def _split(
    x: Tensor, y: Tensor, sizes: tuple[int, int, int], seed: int, device: DeviceLike, num_classes: int | None
) -> Splits:
    """Shuffle ``(x, y)`` with ``seed`` and cut it into train, validation and test."""
    n_train, n_val, n_test = sizes
    if n_train + n_val + n_test != len(x):
        raise ValueError(f"split sizes {sizes} must add up to the {len(x)} samples")
    order = torch.randperm(len(x), generator=checks.generator(seed))
    x, y = x[order].to(device), y[order].to(device)
    cuts = (n_train, n_train + n_val)
    return Splits(
        TensorData(x[: cuts[0]], y[: cuts[0]]),
        TensorData(x[cuts[0] : cuts[1]], y[cuts[0] : cuts[1]]),
        TensorData(x[cuts[1] :], y[cuts[1] :]),
        num_classes,
    )


# --------------------------------------------------------------------------- real data


def load_digits(*, flatten: bool = False, seed: int = 0, device: DeviceLike = None) -> Splits:
    """scikit-learn's bundled 8x8 handwritten digits with a fixed 1197/300/300 split.

    The pixel values (integers 0 to 16) are divided by 16, so inputs lie in [0, 1].

    Args:
        flatten: return inputs of shape ``(N, 64)`` instead of images ``(N, 1, 8, 8)``.
        seed: the seed of the shuffle that defines the split; keep the default for the
            book's split.
        device: where the tensors live (default: CPU).

    Returns:
        The :class:`Splits`, float32 inputs and int64 labels 0 to 9, ``num_classes=10``.

    References:
        Alpaydin and Kaynak, "Optical Recognition of Handwritten Digits", UCI Machine
        Learning Repository, 1998.
    """
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = torch.tensor(bunch.data, dtype=torch.float32) / 16.0
    x = x if flatten else x.reshape(-1, 1, 8, 8)
    y = torch.tensor(bunch.target, dtype=torch.int64)
    return _split(x, y, (1197, 300, 300), seed, device, 10)


@functools.lru_cache(maxsize=1)
def _mnist1d_arrays() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Generate MNIST-1D with the package's default settings (about 4 s, cached in memory)."""
    from mnist1d.data import get_dataset_args, make_dataset

    # make_dataset reseeds Python's and NumPy's global generators: put them back afterwards
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        data = make_dataset(get_dataset_args())
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return data["x"], data["y"], data["x_test"], data["y_test"]


def load_mnist1d(*, seed: int = 0, device: DeviceLike = None) -> Splits:
    """MNIST-1D generated locally, with a fixed 3200/800/1000 split.

    The ``mnist1d`` package's generator runs with its default arguments (5000 signals of
    length 40, seed 42), which reproduces the published data set; its 4000 training
    signals are split into 3200 for training and 800 for validation, and its 1000 test
    signals are the test split. The first call takes a few seconds; the arrays are then
    kept in memory for the rest of the process (nothing is written to disk).

    Args:
        seed: the seed of the shuffle that cuts validation from training; keep the
            default for the book's split.
        device: where the tensors live (default: CPU).

    Returns:
        The :class:`Splits`: float32 inputs ``(N, 40)``, int64 labels 0 to 9,
        ``num_classes=10``.

    References:
        Greydanus and Kobak, "Scaling down deep learning with MNIST-1D", ICML 2024.
    """
    x_train, y_train, x_test, y_test = _mnist1d_arrays()
    x = torch.tensor(x_train, dtype=torch.float32)
    y = torch.tensor(y_train, dtype=torch.int64)
    train_val = _split(x, y, (3200, 800, 0), seed, device, 10)
    test = TensorData(
        torch.tensor(x_test, dtype=torch.float32, device=device),
        torch.tensor(y_test, dtype=torch.int64, device=device),
    )
    return Splits(train_val.train, train_val.val, test, 10)


# ----------------------------------------------------------------------- synthetic data


def make_scaled_regression(
    n: int,
    *,
    scales: tuple[float, ...] = (1.0, 100.0, 0.01),
    noise: float = 0.1,
    seed: int = 0,
    device: DeviceLike = None,
) -> TensorData:
    r"""A linear regression whose features live on very different scales.

    Feature :math:`j` is :math:`x_j = s_j z_j` with :math:`z_j \sim \mathcal{N}(0, 1)`,
    and the target is linear in the standardized features,

    .. math::

        y = \sum_j w_j z_j + b + \varepsilon, \qquad \varepsilon \sim \mathcal{N}(0, \sigma^2),

    with weights :math:`w_j \sim \mathcal{N}(0, 1)` and :math:`b = 1`. Every feature then
    matters about equally, yet the loss surface in :math:`x`'s coordinates is stretched
    by :math:`s_j^2`, which is what feature normalization repairs.

    Args:
        n: number of samples, at least 1.
        scales: the scale :math:`s_j` of each feature, each > 0.
        noise: the noise standard deviation :math:`\sigma`, at least 0.
        seed: the seed of the generator.
        device: where the tensors live (default: CPU).

    Returns:
        :class:`TensorData` with ``x`` of shape ``(n, len(scales))`` and ``y`` of shape
        ``(n, 1)``, both float32.

    Raises:
        ValueError: if ``n`` is not a positive integer, a scale is not > 0, or ``noise``
            is negative.
    """
    checks.integer("n", n, 1)
    if len(scales) == 0 or any(not (math.isfinite(s) and s > 0) for s in scales):
        raise ValueError(f"scales must be a non-empty tuple of finite numbers > 0, got {scales!r}")
    checks.number("noise", noise, 0)
    gen = checks.generator(seed)
    z = torch.randn(n, len(scales), generator=gen)
    w = torch.randn(len(scales), 1, generator=gen)
    y = z @ w + 1.0 + noise * torch.randn(n, 1, generator=gen)
    x = z * torch.tensor(scales, dtype=torch.float32)
    return TensorData(x, y).to(device)


_FUNCTIONS: dict[str, Callable[[Tensor], Tensor]] = {
    "sin": lambda x: torch.sin(2 * math.pi * x),
    "cubic": lambda x: 8 * (x - 0.5) ** 3 - (x - 0.5),
    "step": lambda x: (x >= 0.5).to(x.dtype),
}


def make_noisy_function(
    n: int,
    *,
    function: str | Callable[[Tensor], Tensor] = "sin",
    noise: float = 0.2,
    seed: int = 0,
    device: DeviceLike = None,
) -> TensorData:
    r"""Noisy samples of a 1-D function on [0, 1], for polynomial fits.

    .. math::

        x \sim \mathcal{U}[0, 1], \qquad y = f(x) + \varepsilon, \qquad
        \varepsilon \sim \mathcal{N}(0, \sigma^2).

    The default :math:`f(x) = \sin(2\pi x)` is the classic curve-fitting example: a
    polynomial of degree 3 fits ten points well, one of degree 9 passes through every
    point and oscillates between them.

    Args:
        n: number of samples, at least 1.
        function: ``"sin"`` (:math:`\sin 2\pi x`), ``"cubic"`` or ``"step"``, or any
            callable mapping a tensor of inputs to a tensor of the same shape.
        noise: the noise standard deviation :math:`\sigma`, at least 0.
        seed: the seed of the generator.
        device: where the tensors live (default: CPU).

    Returns:
        :class:`TensorData` with ``x`` and ``y`` of shape ``(n, 1)``, float32, sorted by
        ``x`` (convenient for plotting).

    Raises:
        ValueError: if ``n`` is not a positive integer, ``function`` is an unknown name,
            or ``noise`` is negative.

    References:
        Bishop, "Pattern Recognition and Machine Learning", Springer, 2006, section 1.1.
    """
    checks.integer("n", n, 1)
    checks.number("noise", noise, 0)
    if isinstance(function, str):
        if function not in _FUNCTIONS:
            raise ValueError(f"function must be one of {sorted(_FUNCTIONS)} or a callable, got {function!r}")
        function = _FUNCTIONS[function]
    gen = checks.generator(seed)
    x = torch.rand(n, 1, generator=gen).sort(dim=0).values
    y = function(x) + noise * torch.randn(n, 1, generator=gen)
    return TensorData(x, y.to(torch.float32)).to(device)


def make_moons(n: int, *, noise: float = 0.1, seed: int = 0, device: DeviceLike = None) -> TensorData:
    r"""Two interleaving half circles, a classic non-linearly separable 2-D task.

    Class 0 lies on :math:`(\cos\theta, \sin\theta)`, class 1 on
    :math:`(1 - \cos\theta, \tfrac12 - \sin\theta)`, :math:`\theta \sim \mathcal{U}[0, \pi]`,
    plus Gaussian noise of standard deviation ``noise`` on both coordinates.

    Args:
        n: number of samples, at least 2 (split as evenly as possible between classes).
        noise: the noise standard deviation, at least 0.
        seed: the seed of the generator.
        device: where the tensors live (default: CPU).

    Returns:
        :class:`TensorData` with ``x`` of shape ``(n, 2)`` float32 and ``y`` of shape
        ``(n,)`` int64 in {0, 1}, in random order.

    Raises:
        ValueError: if ``n`` is smaller than 2 or ``noise`` is negative.
    """
    checks.integer("n", n, 2)
    checks.number("noise", noise, 0)
    gen = checks.generator(seed)
    y = (torch.arange(n) >= n // 2).long()
    theta = math.pi * torch.rand(n, generator=gen)
    outer = torch.stack([torch.cos(theta), torch.sin(theta)], dim=1)
    inner = torch.stack([1 - torch.cos(theta), 0.5 - torch.sin(theta)], dim=1)
    x = torch.where(y[:, None] == 0, outer, inner) + noise * torch.randn(n, 2, generator=gen)
    order = torch.randperm(n, generator=gen)
    return TensorData(x[order], y[order]).to(device)


class ShiftedData(NamedTuple):
    """A training set, a test set from its distribution, and a shifted test set."""

    #: The training data.
    train: TensorData
    #: Test data from the training distribution.
    test: TensorData
    #: Test data whose inputs come from a shifted distribution.
    shifted: TensorData


def make_shifted_moons(
    n_train: int,
    n_test: int,
    *,
    shift: tuple[float, float] = (0.5, -0.5),
    rotation: float = 20.0,
    noise: float = 0.1,
    seed: int = 0,
    device: DeviceLike = None,
) -> ShiftedData:
    """Two moons for training and testing, and a shifted copy for mismatch.

    The shifted test set is drawn like the others, then rotated by ``rotation`` degrees
    about the origin and translated by ``shift``: the labelling rule moves with the
    inputs, so a model that learned the training distribution loses accuracy although
    the task itself has not become harder.

    Args:
        n_train: training samples, at least 2.
        n_test: samples in each test set, at least 2.
        shift: the translation ``(dx, dy)`` of the shifted set.
        rotation: the rotation of the shifted set, in degrees.
        noise: the noise standard deviation of all three sets, at least 0.
        seed: the seed; the three sets use independent streams derived from it.
        device: where the tensors live (default: CPU).

    Returns:
        A :class:`ShiftedData` of three :class:`TensorData` as in :func:`make_moons`.

    Raises:
        ValueError: if a size is smaller than 2 or ``noise`` is negative.
    """
    train = make_moons(n_train, noise=noise, seed=seed, device=device)
    test = make_moons(n_test, noise=noise, seed=seed + 1, device=device)
    x, y = make_moons(n_test, noise=noise, seed=seed + 2, device=device)
    angle = math.radians(rotation)
    rot = torch.tensor(
        [[math.cos(angle), math.sin(angle)], [-math.sin(angle), math.cos(angle)]], device=x.device
    )  # row vectors times the transpose of the rotation matrix
    x = x @ rot + torch.tensor(shift, dtype=x.dtype, device=x.device)
    return ShiftedData(train, test, TensorData(x, y))


# ------------------------------------------------------------------ loading and augmenting


class BatchLoader:
    """Mini-batches of in-memory tensors, shuffled every epoch, on the tensors' device.

    A batch is made by indexing the whole tensors with a slice of a permutation, so there
    is no per-sample Python loop and no copy through the host. The permutation is drawn
    from a seeded CPU ``torch.Generator`` once per epoch (a single small transfer), so
    the order of batches is the same on every device and across runs.

    Example::

        loader = BatchLoader(x, y, batch_size=64, seed=0)
        for epoch in range(5):
            for xb, yb in loader:  # a new order every epoch
                ...

    **Data parallelism.** With ``world_size`` processes, ``batch_size`` is still the
    *global* batch, the samples of one optimizer step over all processes, and the process
    ``rank`` gets its share of every batch: the samples ``rank, rank + W, rank + 2W, ...``
    of it (``W = world_size``). ``torch.utils.data.DistributedSampler`` strides the
    whole epoch's permutation the same way, pads it with repeated samples to a multiple of
    ``W`` and needs ``set_epoch`` for a new order; here the batches are strided and nothing
    is repeated. Every process draws the same permutation (same ``seed``, a new one each
    epoch), so the shares of one step are disjoint, together they are exactly the batch
    that ``world_size=1`` gives, and every sample is seen once per epoch across the
    processes; no communication is needed for that. The shares differ in size by at most
    one sample; when ``W`` divides the batch they are equal, and then the average of the
    processes' mean gradients (what ``DistributedDataParallel`` computes) is exactly the
    batch's mean gradient.

    Args:
        x: inputs, one sample per row of the first dimension.
        y: targets with the same first dimension, on the same device.
        batch_size: samples per batch, at least 1.
        shuffle: draw a new order every epoch; if False, keep the given order.
        drop_last: drop the last batch when it is smaller than ``batch_size``.
        seed: the seed of the shuffling generator.
        transform: a function applied to each input batch on the device (augmentation),
            for example :class:`RandomShiftRotate`; if it has a ``reset()`` method (a
            random transform), the loader calls it once, so the augmentations start afresh.
            With several processes each applies it to its own share; a transform with
            ``draw``/``apply`` methods (:class:`RandomShiftRotate`) draws the random numbers
            of the whole batch on every process and applies this process's rows, so a data
            parallel run augments each sample exactly as one process would.
        rank: this process's index, ``0 <= rank < world_size``.
        world_size: the number of processes sharing each batch, at least 1 and at most
            ``batch_size``.

    Raises:
        ValueError: if ``x`` and ``y`` differ in length or device, ``batch_size`` is
            not a positive integer, ``world_size`` is not an integer in
            ``[1, batch_size]``, ``rank`` is not in ``[0, world_size - 1]``, or the last
            batch of an epoch would leave a process without samples (fewer than
            ``world_size`` samples; pass ``drop_last=True``).
    """

    def __init__(
        self,
        x: Tensor,
        y: Tensor,
        *,
        batch_size: int,
        shuffle: bool = True,
        drop_last: bool = False,
        seed: int = 0,
        transform: Callable[[Tensor], Tensor] | None = None,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        if x.shape[0] != y.shape[0]:
            raise ValueError(
                f"x and y must have the same number of samples (first dimension), "
                f"got x {tuple(x.shape)} and y {tuple(y.shape)}"
            )
        if x.device != y.device:
            raise ValueError(f"x and y must be on the same device, got x on {x.device} and y on {y.device}")
        checks.integer("batch_size", batch_size, 1)
        if x.shape[0] == 0:
            raise ValueError("x and y must hold at least one sample")
        checks.integer("world_size", world_size, 1)
        if world_size > batch_size:
            raise ValueError(
                f"world_size must be <= batch_size (each process needs at least one sample of every "
                f"batch), got world_size={world_size} > batch_size={batch_size}"
            )
        checks.integer("rank", rank, 0, world_size - 1)
        last = x.shape[0] % batch_size
        if world_size > 1 and not drop_last and 0 < last < world_size:
            raise ValueError(
                f"the last batch of an epoch holds {last} samples ({x.shape[0]} samples, batch_size="
                f"{batch_size}), fewer than world_size={world_size}: a process would get none; "
                "pass drop_last=True or change batch_size"
            )
        self.rank, self.world_size = rank, world_size
        self.x, self.y = x, y
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.transform = transform
        self.generator = checks.generator(seed)
        if hasattr(transform, "reset"):  # a random transform starts its stream afresh
            transform.reset()

    def __len__(self) -> int:
        """The number of batches per epoch."""
        n = self.x.shape[0]
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(x_batch, y_batch)`` for one epoch (this process's share of each batch)."""
        n = self.x.shape[0]
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(self.x.device, non_blocking=True)
        else:
            order = None
        shard = slice(self.rank, None, self.world_size)  # this process's samples of each batch
        for b in range(len(self)):
            start, stop = b * self.batch_size, min((b + 1) * self.batch_size, n)
            if order is None:
                xb, yb = self.x[start:stop], self.y[start:stop]
                if self.world_size > 1:
                    xb, yb = xb[shard], yb[shard]
            else:
                index = order[start:stop]
                if self.world_size > 1:
                    index = index[shard]
                xb, yb = self.x[index], self.y[index]
            if self.world_size > 1 and hasattr(self.transform, "draw"):
                # a random transform draws for the whole batch and applies this process's rows,
                # so each sample gets the augmentation a single process would give it
                xb = self.transform.apply(xb, self.transform.draw(stop - start, xb.dtype)[shard])
            elif self.transform is not None:
                xb = self.transform(xb)
            yield xb, yb


class RandomShiftRotate:
    """Augment a batch of images with small random shifts and rotations, on its device.

    Each image gets its own translation (uniform in ``[-max_shift, max_shift]`` pixels
    along each axis) and rotation (uniform in ``[-max_degrees, max_degrees]``), applied
    with one ``affine_grid``/``grid_sample`` call for the whole batch (bilinear, zeros
    outside the image). Random numbers come from a CPU generator seeded with ``seed`` and
    are moved to the batch's device, so a seed gives the same augmentation on every
    device. :meth:`reset` starts the stream afresh; :class:`BatchLoader` calls it, so
    every ``fit`` with this transform sees the same augmentations, however often the
    object is reused.

    Args:
        max_shift: the largest shift in pixels, at least 0.
        max_degrees: the largest rotation in degrees, at least 0.
        seed: the seed of the generator.

    Raises:
        ValueError: if ``max_shift`` or ``max_degrees`` is negative.
    """

    def __init__(self, max_shift: float = 1.0, max_degrees: float = 10.0, *, seed: int = 0) -> None:
        checks.number("max_shift", max_shift, 0)
        checks.number("max_degrees", max_degrees, 0)
        self.max_shift = max_shift
        self.max_degrees = max_degrees
        self.seed = seed
        self.generator = checks.generator(seed)

    def reset(self) -> None:
        """Reseed the generator with ``seed``: the next batches get the first augmentations again."""
        self.generator.manual_seed(self.seed)

    def __call__(self, images: Tensor) -> Tensor:
        """Return augmented copies of ``images``, shape ``(B, C, H, W)``.

        Raises:
            ValueError: if ``images`` is not a 4-D tensor.
        """
        if images.dim() != 4:
            raise ValueError(f"images must have shape (B, C, H, W), got {tuple(images.shape)}")
        return self.apply(images, self.draw(images.shape[0], images.dtype))

    def draw(self, batch: int, dtype: torch.dtype = torch.float32) -> Tensor:
        """The next ``batch`` rows of the stream: per image, (angle, x shift, y shift) in [-1, 1]."""
        return torch.rand(batch, 3, generator=self.generator, dtype=dtype) * 2 - 1  # (B, 3)

    def apply(self, images: Tensor, u: Tensor) -> Tensor:
        """Rotate and shift each image by its row of ``u`` (from :meth:`draw`)."""
        _, _, height, width = images.shape
        u = u.to(images.device, images.dtype)
        angle = torch.deg2rad(u[:, 0] * self.max_degrees)
        cos, sin = torch.cos(angle), torch.sin(angle)
        # affine_grid works in normalized coordinates: one pixel is 2 / size
        tx = u[:, 1] * self.max_shift * 2 / width
        ty = u[:, 2] * self.max_shift * 2 / height
        theta = torch.stack([torch.stack([cos, -sin, tx], 1), torch.stack([sin, cos, ty], 1)], 1)  # (B, 2, 3)
        grid = F.affine_grid(theta, list(images.shape), align_corners=False)
        return F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
