r"""Classification losses from scratch: softmax, log-softmax, cross-entropy, NLL, MSE.

Every function here re-derives one in ``torch.nn.functional`` and is tested against it.
The notation is the chapter's: a network outputs *logits* :math:`z \in \mathbb{R}^K`, one
per class; the softmax turns them into probabilities :math:`p = \operatorname{softmax}(z)`;
a label is an integer :math:`y \in \{0, \dots, K - 1\}` or its one-hot vector
:math:`\hat y = e_y`.

- :func:`softmax_naive` follows the formula literally and overflows for logits above
  about 88 in float32; :func:`softmax` subtracts the largest logit first and never does.
- :func:`log_softmax` (the logits minus their log-sum-exp, shifted by the largest logit)
  is the stable building block of the losses.
- The sigmoid, the two-class softmax, is :func:`lib.activations.sigmoid`.
- :func:`nll_loss`, :func:`cross_entropy` and :func:`mse_one_hot` are losses
  ``(output, target) -> batch mean``, ready for ``lib.train.fit``.
- :func:`one_hot` turns labels into one-hot vectors.

Batches are 2-D: ``(N, K)`` logits with ``(N,)`` integer labels or ``(N, K)`` target
probabilities. Bad shapes, dtypes or labels raise ``ValueError`` naming the argument.
"""

from __future__ import annotations

import torch
from torch import Tensor

from lib import checks

__all__ = [
    "cross_entropy",
    "log_softmax",
    "mse_one_hot",
    "nll_loss",
    "one_hot",
    "softmax",
    "softmax_naive",
]


# ------------------------------------------------------------------------------ checks


def _check_float(name: str, tensor: Tensor) -> None:
    if not isinstance(tensor, Tensor) or not tensor.is_floating_point():
        kind = tensor.dtype if isinstance(tensor, Tensor) else type(tensor).__name__
        raise ValueError(f"{name} must be a floating-point tensor, got {kind}")


def _check_dim(dim: int, tensor: Tensor) -> None:
    if tensor.dim() == 0:
        raise ValueError("logits must have at least one dimension (the classes), got a scalar")
    checks.integer("dim", dim, -tensor.dim(), tensor.dim() - 1)


def _check_batch(name: str, values: Tensor) -> None:
    _check_float(name, values)
    if values.dim() != 2:
        raise ValueError(f"{name} must have shape (N, K), got {tuple(values.shape)}")
    if values.shape[1] == 0:
        raise ValueError(f"{name} must have at least one class, got shape {tuple(values.shape)}")


def _check_labels(name: str, labels: Tensor, n: int, num_classes: int) -> None:
    """Integer labels of shape ``(n,)``, each in ``[0, num_classes)``."""
    if not isinstance(labels, Tensor):
        raise ValueError(f"{name} must be a tensor of class labels, got {type(labels).__name__}")
    if labels.dtype == torch.bool or labels.is_floating_point() or labels.is_complex():
        raise ValueError(f"{name} must hold integer class labels, got dtype {labels.dtype}")
    if labels.shape != (n,):
        raise ValueError(
            f"{name} must have shape ({n},) to match the {n} rows of the input, got {tuple(labels.shape)}"
        )
    outside = (labels < 0) | (labels >= num_classes)
    if n and bool(outside.any()):  # one synchronization on a GPU, as torch's own check
        raise ValueError(
            f"{name} must hold labels in [0, {num_classes - 1}], got {labels[outside][0].item()}"
        )


# ------------------------------------------------------------------ softmax and friends


def softmax_naive(logits: Tensor, dim: int = -1) -> Tensor:
    r"""The softmax exactly as the formula reads, without any protection against overflow.

    .. math::

        \operatorname{softmax}(z)_k = \frac{e^{z_k}}{\sum_{j=1}^{K} e^{z_j}}.

    Do not use it: :math:`e^{z}` overflows to infinity for :math:`z > 88.7` in float32
    (:math:`z > 709.8` in float64) and underflows to zero for very negative :math:`z`;
    either way the ratio becomes ``0 / 0`` or ``inf / inf``, that is NaN. It is here so
    that the chapter can show the failure that :func:`softmax` avoids.

    Args:
        logits: the scores :math:`z`, any shape, floating point.
        dim: the dimension that holds the classes.

    Returns:
        A tensor of the shape of ``logits``; NaN wherever the computation overflowed.

    Raises:
        ValueError: if ``logits`` is not a floating-point tensor with at least one
            dimension, or ``dim`` is out of range.
    """
    _check_float("logits", logits)
    _check_dim(dim, logits)
    exp = torch.exp(logits)
    return exp / exp.sum(dim=dim, keepdim=True)


def softmax(logits: Tensor, dim: int = -1) -> Tensor:
    r"""The numerically stable softmax: subtract the largest logit before exponentiating.

    The softmax does not change when the same constant :math:`c` is added to every logit,
    because :math:`e^{c}` cancels between numerator and denominator. With
    :math:`c = -\max_j z_j`,

    .. math::

        \operatorname{softmax}(z)_k = \frac{e^{z_k - m}}{\sum_{j=1}^{K} e^{z_j - m}},
        \qquad m = \max_j z_j,

    every exponent is at most 0, so nothing overflows, and the largest term is
    :math:`e^0 = 1`, so the denominator lies in :math:`[1, K]` and never underflows to 0.

    Args:
        logits: the scores :math:`z`, any shape, floating point.
        dim: the dimension that holds the classes.

    Returns:
        Probabilities of the shape of ``logits``, non-negative and summing to 1 along ``dim``.

    Raises:
        ValueError: if ``logits`` is not a floating-point tensor with at least one
            dimension, or ``dim`` is out of range.
    """
    _check_float("logits", logits)
    _check_dim(dim, logits)
    # the shift is a constant for the result, so no gradient needs to flow through it
    shifted = logits - logits.amax(dim=dim, keepdim=True).detach()
    exp = torch.exp(shifted)  # every entry in (0, 1], the largest exactly 1
    return exp / exp.sum(dim=dim, keepdim=True)


def log_softmax(logits: Tensor, dim: int = -1) -> Tensor:
    r"""The logarithm of the softmax, computed directly rather than as ``log(softmax(z))``.

    .. math::

        \log \operatorname{softmax}(z)_k = z_k - \log \sum_{j=1}^{K} e^{z_j}
        = (z_k - m) - \log \sum_{j=1}^{K} e^{z_j - m}, \qquad m = \max_j z_j.

    Taking the log of :func:`softmax` fails when a probability underflows to 0 (for a
    logit gap above about 104 in float32): the log is then :math:`-\infty`. The formula
    above stays finite, and it is what the cross-entropy needs.

    Args:
        logits: the scores :math:`z`, any shape, floating point.
        dim: the dimension that holds the classes.

    Returns:
        Log-probabilities of the shape of ``logits``, all at most 0.

    Raises:
        ValueError: if ``logits`` is not a floating-point tensor with at least one
            dimension, or ``dim`` is out of range.
    """
    _check_float("logits", logits)
    _check_dim(dim, logits)
    # z_k - logsumexp(z) = (z_k - m) - log sum_j exp(z_j - m): subtracting m first keeps the
    # small differences exact even when the logits themselves are huge
    shifted = logits - logits.amax(dim=dim, keepdim=True).detach()
    return shifted - torch.log(torch.exp(shifted).sum(dim=dim, keepdim=True))


def one_hot(labels: Tensor, num_classes: int, dtype: torch.dtype = torch.float32) -> Tensor:
    r"""One-hot vectors: label :math:`y` becomes :math:`e_y \in \{0, 1\}^K`.

    .. math::

        (e_y)_k = \begin{cases} 1 & k = y, \\ 0 & \text{otherwise.} \end{cases}

    Args:
        labels: integer class labels of shape ``(N,)``.
        num_classes: :math:`K`, at least 1.
        dtype: the dtype of the result.

    Returns:
        A tensor of shape ``(N, num_classes)`` on the device of ``labels``.

    Raises:
        ValueError: if ``num_classes`` is not a positive integer, or ``labels`` is not a
            1-D integer tensor with values in ``[0, num_classes)``.
    """
    checks.integer("num_classes", num_classes, 1)
    if not isinstance(labels, Tensor) or labels.dim() != 1:
        shape = tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__
        raise ValueError(f"labels must be a 1-D tensor of class labels, got {shape}")
    _check_labels("labels", labels, labels.shape[0], num_classes)
    out = torch.zeros(labels.shape[0], num_classes, dtype=dtype, device=labels.device)
    return out.scatter_(1, labels.unsqueeze(1), 1.0)


# ------------------------------------------------------------------------------ losses


def nll_loss(log_probs: Tensor, target: Tensor) -> Tensor:
    r"""The negative log-likelihood of the correct classes, averaged over the batch.

    .. math::

        L = -\frac{1}{N} \sum_{n=1}^{N} \log p_{n, y_n},

    where ``log_probs[n, k]`` holds :math:`\log p_{n,k}`. It does not apply a softmax:
    pass it the output of :func:`log_softmax`.

    Args:
        log_probs: log-probabilities of shape ``(N, K)``.
        target: integer labels of shape ``(N,)``, each in ``[0, K)``.

    Returns:
        A scalar tensor.

    Raises:
        ValueError: if ``log_probs`` is not a floating-point ``(N, K)`` tensor, or
            ``target`` is not ``(N,)`` integer labels in range.
    """
    _check_batch("log_probs", log_probs)
    _check_labels("target", target, log_probs.shape[0], log_probs.shape[1])
    picked = log_probs.gather(1, target.unsqueeze(1)).squeeze(1)  # (N,): log p_{n, y_n}
    return -picked.mean()


def cross_entropy(logits: Tensor, target: Tensor) -> Tensor:
    r"""The cross-entropy between one-hot (or any) targets and the softmax of the logits.

    For target probabilities :math:`\hat y_n` (a one-hot vector, or any distribution),

    .. math::

        L = -\frac{1}{N} \sum_{n=1}^{N} \sum_{k=1}^{K} \hat y_{n,k}
            \log \operatorname{softmax}(z_n)_k,

    which for one-hot targets :math:`\hat y_n = e_{y_n}` is
    :math:`-\frac{1}{N} \sum_n \log \operatorname{softmax}(z_n)_{y_n}`: the negative
    log-likelihood of the labels, that is :func:`nll_loss` of :func:`log_softmax`.
    Its gradient with respect to the logits is :math:`(p_n - \hat y_n) / N`.

    Args:
        logits: the scores :math:`z` of shape ``(N, K)``.
        target: integer labels of shape ``(N,)`` in ``[0, K)``, or floating-point target
            probabilities of shape ``(N, K)`` (such as one-hot vectors), as in
            ``torch.nn.functional.cross_entropy``.

    Returns:
        A scalar tensor.

    Raises:
        ValueError: if ``logits`` is not a floating-point ``(N, K)`` tensor, or
            ``target`` is neither ``(N,)`` labels in range nor ``(N, K)`` floating point.
    """
    _check_batch("logits", logits)
    if isinstance(target, Tensor) and target.is_floating_point():
        if target.shape != logits.shape:
            raise ValueError(
                f"target probabilities must have the shape of logits {tuple(logits.shape)}, "
                f"got {tuple(target.shape)}"
            )
        return -(target * log_softmax(logits, dim=1)).sum(dim=1).mean()
    return nll_loss(log_softmax(logits, dim=1), target)


def mse_one_hot(outputs: Tensor, target: Tensor, *, from_logits: bool = True) -> Tensor:
    r"""The squared distance between the predicted probabilities and the one-hot targets.

    With :math:`p_n = \operatorname{softmax}(z_n)` (or the raw outputs when
    ``from_logits=False``),

    .. math::

        L = \frac{1}{N} \sum_{n=1}^{N} \sum_{k=1}^{K} \left(p_{n,k} - \hat y_{n,k}\right)^2,

    summed over the classes and averaged over the samples, like the cross-entropy. (It is
    ``K`` times ``torch.nn.functional.mse_loss``, which averages over the classes too.)
    Through the softmax it is bounded by 2, and its gradient vanishes wherever the
    softmax saturates, whether the prediction is right or confidently wrong.

    Args:
        outputs: logits of shape ``(N, K)`` (or outputs to compare directly when
            ``from_logits=False``).
        target: integer labels of shape ``(N,)`` in ``[0, K)``.
        from_logits: apply the softmax to ``outputs`` first.

    Returns:
        A scalar tensor.

    Raises:
        ValueError: if ``outputs`` is not a floating-point ``(N, K)`` tensor, or
            ``target`` is not ``(N,)`` integer labels in range.
    """
    _check_batch("outputs", outputs)
    _check_labels("target", target, outputs.shape[0], outputs.shape[1])
    p = softmax(outputs, dim=1) if from_logits else outputs
    targets = one_hot(target, outputs.shape[1], dtype=outputs.dtype)  # (N, K)
    return ((p - targets) ** 2).sum(dim=1).mean()
