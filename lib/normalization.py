r"""Normalization layers from scratch: BatchNorm, LayerNorm and feature standardization.

Each layer re-derives its ``torch.nn`` counterpart with the same arguments, defaults,
parameter and buffer names, so a state dict loads across implementations and the
outputs can be compared 1:1::

    from lib.normalization import BatchNorm
    bn = BatchNorm(16)                                 # like torch.nn.BatchNorm1d(16)
    bn.load_state_dict(torch.nn.BatchNorm1d(16).state_dict())

The difference between the two layers is the axis they average over. For an input of
shape ``(N, C)`` (a batch of ``N`` samples with ``C`` features), BatchNorm computes one
mean and variance per feature over the batch (down the column), LayerNorm one mean and
variance per sample over its features (along the row).

References:
    Ioffe and Szegedy, "Batch Normalization: Accelerating Deep Network Training by
    Reducing Internal Covariate Shift", ICML 2015.

    Ba, Kiros and Hinton, "Layer Normalization", arXiv:1607.06450, 2016.
"""

from collections.abc import Sequence

import torch
from torch import Tensor, nn

__all__ = ["BatchNorm", "LayerNorm", "standardize"]


def standardize(x: Tensor, dim: int | Sequence[int] = 0, eps: float = 0.0) -> Tensor:
    r"""Shift and scale ``x`` to mean 0 and standard deviation 1 along ``dim``.

    .. math::

        \tilde x = \frac{x - \mu}{\sqrt{\sigma^2 + \epsilon}}, \qquad
        \mu = \operatorname{mean}_{\text{dim}}(x), \quad
        \sigma^2 = \operatorname{mean}_{\text{dim}}\big((x - \mu)^2\big).

    With the default ``dim=0`` and a data matrix of shape ``(N, D)`` this is feature
    standardization: every column gets mean 0 and (biased) variance 1.

    Args:
        x: the tensor to standardize.
        dim: the dimension or dimensions to average over.
        eps: added to the variance; keep 0 for exact unit variance, use a small
            positive value if a slice may be constant.

    Returns:
        A tensor of the shape of ``x``.

    Raises:
        ValueError: if ``eps`` is negative.
    """
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    mean = x.mean(dim=dim, keepdim=True)
    var = x.var(dim=dim, unbiased=False, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps)


class BatchNorm(nn.Module):
    r"""Batch normalization over the batch (and spatial) axes, one statistic per channel.

    For an input of shape ``(N, C)`` or ``(N, C, H, W)`` and each channel :math:`c`, in
    training mode the layer uses the statistics of the batch, over the
    :math:`m = N` (or :math:`m = N H W`) values of that channel:

    .. math::

        \mu_c = \frac{1}{m} \sum_i x_{ic}, \qquad
        \sigma_c^2 = \frac{1}{m} \sum_i (x_{ic} - \mu_c)^2, \qquad
        y_{ic} = \gamma_c \frac{x_{ic} - \mu_c}{\sqrt{\sigma_c^2 + \epsilon}} + \beta_c,

    and updates the running statistics as an exponential moving average with the
    **unbiased** batch variance,

    .. math::

        \hat\mu_c \leftarrow (1 - \alpha)\,\hat\mu_c + \alpha\,\mu_c, \qquad
        \hat\sigma_c^2 \leftarrow (1 - \alpha)\,\hat\sigma_c^2
        + \alpha\,\frac{m}{m - 1}\,\sigma_c^2,

    where :math:`\alpha` is ``momentum`` (with ``momentum=None``, :math:`\alpha = 1/t`
    at the :math:`t`-th batch: a plain cumulative average). In evaluation mode the layer
    normalizes with :math:`\hat\mu_c` and :math:`\hat\sigma_c^2` instead, so the output
    for one sample no longer depends on the other samples of the batch.

    The parameters ``weight`` (:math:`\gamma`, ones) and ``bias`` (:math:`\beta`, zeros)
    and the buffers ``running_mean`` (zeros), ``running_var`` (ones) and
    ``num_batches_tracked`` carry torch's names, so state dicts of
    ``torch.nn.BatchNorm1d`` and ``torch.nn.BatchNorm2d`` load into this layer and back.

    Args:
        num_features: the number of channels :math:`C`, at least 1.
        eps: added to the variance for numerical stability, > 0.
        momentum: the weight :math:`\alpha` of the newest batch in the running
            averages, in [0, 1], or ``None`` for a cumulative average.
        affine: learn :math:`\gamma` and :math:`\beta`; if False, :math:`\gamma = 1`
            and :math:`\beta = 0`.
        track_running_stats: keep running statistics; if False, there are none and
            the batch statistics are used in both modes.
        device: where the parameters and buffers live.
        dtype: their dtype.

    Raises:
        ValueError: for a bad argument, and in :meth:`forward` for an input with the
            wrong number of dimensions or channels, or a single value per channel in
            training mode.

    Note:
        Like torch, the layer normalizes with the biased variance (divide by :math:`m`)
        but stores the unbiased one (divide by :math:`m - 1`) in ``running_var``.
    """

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_features, int) or num_features < 1:
            raise ValueError(f"num_features must be a positive integer, got {num_features!r}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        if momentum is not None and not 0.0 <= momentum <= 1.0:
            raise ValueError(f"momentum must be in [0, 1] or None, got {momentum}")
        kwargs = {"device": device, "dtype": dtype}
        self.num_features = num_features
        self.eps = eps
        self.momentum = momentum
        self.affine = affine
        self.track_running_stats = track_running_stats
        if affine:
            self.weight = nn.Parameter(torch.ones(num_features, **kwargs))  # gamma
            self.bias = nn.Parameter(torch.zeros(num_features, **kwargs))  # beta
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)
        if track_running_stats:
            self.register_buffer("running_mean", torch.zeros(num_features, **kwargs))
            self.register_buffer("running_var", torch.ones(num_features, **kwargs))
            self.register_buffer("num_batches_tracked", torch.tensor(0, dtype=torch.long, device=device))
        else:
            self.register_buffer("running_mean", None)
            self.register_buffer("running_var", None)
            self.register_buffer("num_batches_tracked", None)

    def extra_repr(self) -> str:
        """The arguments, as torch prints them."""
        return (
            f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
            f"affine={self.affine}, track_running_stats={self.track_running_stats}"
        )

    def _check_input(self, x: Tensor) -> None:
        if x.dim() not in (2, 4):
            raise ValueError(
                f"x must have shape (N, C) or (N, C, H, W), got {x.dim()} dimensions {tuple(x.shape)}"
            )
        if x.shape[1] != self.num_features:
            raise ValueError(
                f"x must have num_features={self.num_features} channels in dimension 1, "
                f"got {x.shape[1]} (shape {tuple(x.shape)})"
            )

    def forward(self, x: Tensor) -> Tensor:
        """Normalize ``x`` of shape ``(N, C)`` or ``(N, C, H, W)``."""
        self._check_input(x)
        dims = [0] if x.dim() == 2 else [0, 2, 3]  # every axis but the channel axis
        shape = [1, -1] + [1] * (x.dim() - 2)  # broadcast (C,) against x
        use_batch = self.training or not self.track_running_stats
        if use_batch:
            m = x.numel() // x.shape[1]  # values per channel
            if m < 2 and self.training:
                raise ValueError(
                    f"x must hold more than 1 value per channel in training mode, got shape {tuple(x.shape)}"
                )
            mean = x.mean(dim=dims)  # (C,)
            var = x.var(dim=dims, unbiased=False)  # (C,), biased: divide by m
            if self.training and self.track_running_stats:
                with torch.no_grad():
                    self.num_batches_tracked.add_(1)
                    if self.momentum is None:  # cumulative average: alpha = 1 / t
                        alpha = 1.0 / float(self.num_batches_tracked.item())
                    else:
                        alpha = self.momentum
                    # mu_hat <- (1 - alpha) mu_hat + alpha mu
                    self.running_mean.mul_(1 - alpha).add_(mean, alpha=alpha)
                    # var_hat <- (1 - alpha) var_hat + alpha m / (m - 1) sigma^2
                    self.running_var.mul_(1 - alpha).add_(var * (m / (m - 1)), alpha=alpha)
        else:
            mean, var = self.running_mean, self.running_var
        # y = gamma (x - mu) / sqrt(sigma^2 + eps) + beta
        y = (x - mean.reshape(shape)) / torch.sqrt(var.reshape(shape) + self.eps)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        return y


class LayerNorm(nn.Module):
    r"""Layer normalization: one mean and variance per sample, over its last dimensions.

    For ``normalized_shape`` of :math:`k` dimensions, the statistics are taken over the
    last :math:`k` dimensions of the input, separately for every leading index
    (every sample, every position of a sequence):

    .. math::

        \mu = \frac{1}{H} \sum_{j} x_j, \qquad
        \sigma^2 = \frac{1}{H} \sum_j (x_j - \mu)^2, \qquad
        y_j = \gamma_j \frac{x_j - \mu}{\sqrt{\sigma^2 + \epsilon}} + \beta_j,

    where :math:`H` is the number of elements in ``normalized_shape``. The same
    computation runs in training and evaluation mode, there are no running statistics,
    and a sample's output never depends on the other samples of the batch.

    The parameters ``weight`` (:math:`\gamma`, ones) and ``bias`` (:math:`\beta`, zeros)
    have the shape ``normalized_shape`` and carry torch's names.

    Args:
        normalized_shape: the trailing shape to normalize over (an int for one
            dimension).
        eps: added to the variance, > 0.
        elementwise_affine: learn :math:`\gamma` and :math:`\beta`.
        bias: learn :math:`\beta` (only with ``elementwise_affine``).
        device: where the parameters live.
        dtype: their dtype.

    Raises:
        ValueError: for a bad argument, and in :meth:`forward` if the input's trailing
            shape is not ``normalized_shape``.
    """

    def __init__(
        self,
        normalized_shape: int | Sequence[int],
        eps: float = 1e-5,
        elementwise_affine: bool = True,
        bias: bool = True,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        shape = (normalized_shape,) if isinstance(normalized_shape, int) else tuple(normalized_shape)
        if len(shape) == 0 or any(not isinstance(s, int) or s < 1 for s in shape):
            raise ValueError(f"normalized_shape must hold positive integers, got {normalized_shape!r}")
        if not eps > 0:
            raise ValueError(f"eps must be > 0, got {eps}")
        kwargs = {"device": device, "dtype": dtype}
        self.normalized_shape = shape
        self.eps = eps
        self.elementwise_affine = elementwise_affine
        if elementwise_affine:
            self.weight = nn.Parameter(torch.ones(shape, **kwargs))  # gamma
            if bias:
                self.bias = nn.Parameter(torch.zeros(shape, **kwargs))  # beta
            else:
                self.register_parameter("bias", None)
        else:
            self.register_parameter("weight", None)
            self.register_parameter("bias", None)

    def extra_repr(self) -> str:
        """The arguments, as torch prints them."""
        return f"{self.normalized_shape}, eps={self.eps}, elementwise_affine={self.elementwise_affine}"

    def forward(self, x: Tensor) -> Tensor:
        """Normalize ``x`` of shape ``(*, *normalized_shape)``."""
        k = len(self.normalized_shape)
        if x.dim() < k or tuple(x.shape[-k:]) != self.normalized_shape:
            raise ValueError(
                f"x must end in normalized_shape={self.normalized_shape}, got shape {tuple(x.shape)}"
            )
        dims = tuple(range(-k, 0))  # the last k dimensions
        mean = x.mean(dim=dims, keepdim=True)  # (*, 1, ..., 1)
        var = x.var(dim=dims, unbiased=False, keepdim=True)
        y = (x - mean) / torch.sqrt(var + self.eps)
        if self.weight is not None:
            y = y * self.weight
        if self.bias is not None:
            y = y + self.bias
        return y
