r"""Learning theory made computable: the 1-D threshold task and its finite hypothesis class.

Inputs :math:`x \sim \mathcal{U}[0, 1]` are labelled :math:`\mathbb{1}[x \ge t^*]`, each
label flipped with probability :math:`\eta`. The hypotheses are the thresholds
:math:`h_t(x) = \mathbb{1}[x \ge t]` on a grid of :math:`|\mathcal{H}|` values, so every
quantity of the generalization bound can be computed exactly:

- :func:`make_threshold_data`: a sample of the task;
- :func:`threshold_grid`: the finite class :math:`\mathcal{H}`;
- :func:`threshold_errors`: the empirical error of every hypothesis on a sample, in one pass;
- :func:`threshold_true_error`: the exact expected error of every hypothesis.
"""

import torch
from torch import Tensor

from lib import checks
from lib.data import DeviceLike, TensorData

__all__ = ["make_threshold_data", "threshold_errors", "threshold_grid", "threshold_true_error"]


def make_threshold_data(
    n: int, *, threshold: float = 0.5, label_noise: float = 0.0, seed: int = 0, device: DeviceLike = None
) -> TensorData:
    r"""The 1-D threshold task: :math:`x \sim \mathcal{U}[0, 1]`, label :math:`\mathbb{1}[x \ge t^*]`.

    With probability ``label_noise`` each label is flipped, so even the true threshold
    errs on a fraction ``label_noise`` of the samples. Paired with the finite class of
    thresholds from :func:`threshold_grid`, it makes the generalization bound
    computable: see :func:`threshold_errors` and :func:`threshold_true_error`.

    Args:
        n: number of samples, at least 1.
        threshold: the true threshold :math:`t^*` in [0, 1].
        label_noise: the flip probability in [0, 0.5).
        seed: the seed of the generator.
        device: where the tensors live (default: CPU).

    Returns:
        :class:`~lib.data.TensorData` with ``x`` of shape ``(n,)`` float32 and ``y`` of shape
        ``(n,)`` int64 in {0, 1}.

    Raises:
        ValueError: if ``n``, ``threshold`` or ``label_noise`` is outside its range.
    """
    checks.integer("n", n, 1)
    checks.number("threshold", threshold, 0, 1)
    checks.number("label_noise", label_noise, 0, 0.5, high_open=True)
    gen = checks.generator(seed)
    x = torch.rand(n, generator=gen)
    flip = torch.rand(n, generator=gen) < label_noise
    y = ((x >= threshold) ^ flip).long()
    return TensorData(x, y).to(device)


def threshold_grid(size: int, *, device: DeviceLike = None) -> Tensor:
    """The finite hypothesis class of thresholds ``0, 1/(size-1), ..., 1``.

    Hypothesis :math:`h_t(x) = 1[x >= t]`; the class holds ``size`` of them.

    Args:
        size: the number of hypotheses H, at least 2.
        device: where the tensor lives (default: CPU).

    Returns:
        A float32 tensor of shape ``(size,)``.

    Raises:
        ValueError: if ``size`` is smaller than 2.
    """
    checks.integer("size", size, 2)
    return torch.linspace(0.0, 1.0, size, device=device)


def threshold_errors(thresholds: Tensor, data: TensorData) -> Tensor:
    """The empirical error of every threshold hypothesis on ``data``, in one pass.

    Args:
        thresholds: the hypotheses, shape ``(H,)``.
        data: samples from :func:`make_threshold_data`, ``x`` and ``y`` of shape ``(n,)``,
            on the device of ``thresholds``.

    Returns:
        The fraction of misclassified samples for each hypothesis, shape ``(H,)``.

    Raises:
        ValueError: if the shapes or devices do not match.
    """
    x, y = data
    if thresholds.dim() != 1 or x.dim() != 1 or x.shape != y.shape:
        raise ValueError(
            f"thresholds must have shape (H,) and data.x, data.y shape (n,), got "
            f"{tuple(thresholds.shape)}, {tuple(x.shape)}, {tuple(y.shape)}"
        )
    if thresholds.device != x.device:
        raise ValueError(f"thresholds are on {thresholds.device} but data is on {x.device}")
    predictions = (x[None, :] >= thresholds[:, None]).long()  # (H, n)
    return (predictions != y[None, :]).float().mean(dim=1)


def threshold_true_error(thresholds: Tensor, threshold: float, label_noise: float = 0.0) -> Tensor:
    r"""The exact expected error of each threshold under the task's distribution.

    For :math:`x \sim \mathcal{U}[0, 1]` and flip probability :math:`\eta`,

    .. math::

        L(h_t) = \eta + (1 - 2\eta)\,|t - t^*|.

    Args:
        thresholds: the hypotheses, any shape, values in [0, 1].
        threshold: the true threshold :math:`t^*`.
        label_noise: the flip probability :math:`\eta` in [0, 0.5).

    Returns:
        The expected errors, same shape and device as ``thresholds``.
    """
    return label_noise + (1 - 2 * label_noise) * (thresholds - threshold).abs()
