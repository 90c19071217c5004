r"""Small, readable models for the book's experiments.

- :func:`mlp`: a multi-layer perceptron with a choice of width, depth, activation,
  optional BatchNorm or LayerNorm and optional residual connections.
- :class:`DigitsCNN`: a small convolutional network for the 8x8 digits, optionally with
  BatchNorm or GroupNorm.
- :class:`SpatialTransformer`: a layer that predicts an affine map from its input image
  and resamples the image with it (Jaderberg et al., 2015).
- :class:`OneNeuron`: the one-hidden-neuron network of the notes,
  :math:`\hat y = w_1 w_2 x`, whose loss surface has a saddle point at the origin.
- :func:`count_parameters` and :class:`ParameterCount`: how many parameters a model has,
  printable per layer.

Every builder takes ``device`` and ``dtype`` and creates its parameters there.
"""

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from lib import checks

__all__ = [
    "mlp",
    "HiddenBlock",  # the layer mlp repeats: what a chapter's printed network is made of
    "DigitsCNN",
    "OneNeuron",
    "ParameterCount",
    "count_parameters",
    "SpatialTransformer",
]

DeviceLike = torch.device | str | None

ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "leaky_relu": nn.LeakyReLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "silu": nn.SiLU,
    "identity": nn.Identity,
}


def _activation(activation: str | nn.Module | type[nn.Module]) -> nn.Module:
    """A fresh activation module from a name, a module class or a module instance."""
    if isinstance(activation, str):
        if activation not in ACTIVATIONS:
            raise ValueError(
                f"activation must be one of {sorted(ACTIVATIONS)} or an nn.Module, got {activation!r}"
            )
        return ACTIVATIONS[activation]()
    if isinstance(activation, type) and issubclass(activation, nn.Module):
        return activation()
    if isinstance(activation, nn.Module):
        return copy.deepcopy(activation)  # each layer its own copy (PReLU has parameters)
    raise ValueError(f"activation must be a name, an nn.Module class or instance, got {activation!r}")


class HiddenBlock(nn.Module):
    r"""One hidden layer of an MLP: linear, optional normalization, activation.

    .. math::

        & h' = \phi(\mathrm{norm}(W h + b)), \\
        & \text{or with a residual connection: } h' = h + \phi(\mathrm{norm}(W h + b)).

    Args:
        width: the number of units in and out.
        activation: the activation module.
        norm: ``None``, ``"batch"`` (BatchNorm) or ``"layer"`` (LayerNorm).
        residual: add the input to the output (a skip connection).
        device: where the parameters live.
        dtype: the parameters' dtype.
    """

    def __init__(
        self,
        width: int,
        activation: nn.Module,
        norm: str | None,
        residual: bool,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        kwargs = {"device": device, "dtype": dtype}
        self.linear = nn.Linear(width, width, **kwargs)
        self.norm = _norm(norm, width, **kwargs)
        self.activation = activation
        self.residual = residual

    def forward(self, h: Tensor) -> Tensor:
        """Apply the block to ``h`` of shape ``(B, width)``."""
        out = self.activation(self.norm(self.linear(h)))
        return h + out if self.residual else out


def _norm(norm: str | None, width: int, **kwargs: object) -> nn.Module:
    if norm is None:
        return nn.Identity()
    if norm == "batch":
        return nn.BatchNorm1d(width, **kwargs)
    if norm == "layer":
        return nn.LayerNorm(width, **kwargs)
    raise ValueError(f"norm must be None, 'batch' or 'layer', got {norm!r}")


def mlp(
    in_features: int,
    width: int,
    depth: int,
    out_features: int,
    *,
    activation: str | nn.Module | type[nn.Module] = "relu",
    norm: str | None = None,
    residual: bool = False,
    device: DeviceLike = None,
    dtype: torch.dtype | None = None,
) -> nn.Sequential:
    r"""A multi-layer perceptron with ``depth`` hidden layers of ``width`` units.

    The layers are: a flatten (so images work as inputs), an input layer
    ``in_features -> width`` followed by the normalization and activation, then
    ``depth - 1`` :class:`HiddenBlock` s ``width -> width``, then a linear output layer
    ``width -> out_features``. With ``residual=True`` each of those hidden blocks adds
    its input to its output,

    .. math::

        h_{l+1} = h_l + \phi(\mathrm{norm}(W_l h_l + b_l)),

    so the gradient has a path around every block (He et al., 2016).

    Args:
        in_features: inputs per sample (after flattening), at least 1.
        width: units per hidden layer, at least 1.
        depth: number of hidden layers, at least 1.
        out_features: outputs per sample, at least 1.
        activation: ``"relu"``, ``"leaky_relu"``, ``"elu"``, ``"gelu"``, ``"tanh"``,
            ``"sigmoid"``, ``"silu"`` or ``"identity"``, or an ``nn.Module`` class or
            instance.
        norm: ``None``, ``"batch"`` (BatchNorm after each hidden linear layer) or
            ``"layer"`` (LayerNorm).
        residual: add skip connections around the hidden blocks.
        device: where the parameters live (default: CPU).
        dtype: the parameters' dtype (default: torch's default, float32).

    Returns:
        The network as an ``nn.Sequential``; index ``-1`` is the output layer.

    Raises:
        ValueError: if a size is not a positive integer, or ``activation`` or ``norm``
            is unknown.

    References:
        He, Zhang, Ren and Sun, "Deep Residual Learning for Image Recognition", CVPR 2016.
    """
    for name, value in (
        ("in_features", in_features),
        ("width", width),
        ("depth", depth),
        ("out_features", out_features),
    ):
        checks.integer(name, value, 1)
    _norm(norm, 1)  # validate the name before building anything
    kwargs = {"device": device, "dtype": dtype}
    layers: list[nn.Module] = [
        nn.Flatten(),
        nn.Linear(in_features, width, **kwargs),
        _norm(norm, width, **kwargs),
        _activation(activation),
    ]
    for _ in range(depth - 1):
        layers.append(HiddenBlock(width, _activation(activation), norm, residual, **kwargs))
    layers.append(nn.Linear(width, out_features, **kwargs))
    return nn.Sequential(*layers)


class DigitsCNN(nn.Module):
    """A small CNN for the 8x8 digits: two convolutions, a pooling, a linear classifier.

    Shapes: ``(B, 1, 8, 8) -> conv 3x3 -> (B, c, 8, 8) -> conv 3x3 -> (B, 2c, 8, 8) ->
    max-pool 2 -> (B, 2c, 4, 4) -> flatten -> linear -> (B, num_classes)``, with ReLU
    after each convolution and an optional normalization before it:

    - ``"batch"``: ``BatchNorm2d``, statistics of each channel over the batch and the pixels;
    - ``"group"``: ``GroupNorm``, statistics of each example over a group of ``C / groups``
      channels and their pixels, the same in training and evaluation (Wu and He, 2018).

    Args:
        channels: the channels ``c`` of the first convolution, at least 1.
        num_classes: the number of outputs, at least 1.
        batch_norm: add ``BatchNorm2d`` after each convolution; the same as ``norm="batch"``.
        norm: ``None``, ``"batch"`` or ``"group"``.
        groups: the number of groups of ``"group"``, at least 1; it must divide ``c``
            (and so ``2c``).
        device: where the parameters live (default: CPU).
        dtype: the parameters' dtype (default: float32).

    Raises:
        ValueError: if ``channels``, ``num_classes`` or ``groups`` is not a positive
            integer, ``groups`` does not divide ``channels``, ``norm`` is unknown, or
            ``batch_norm=True`` comes with another ``norm``.

    References:
        Wu and He, "Group Normalization", ECCV 2018.
    """

    def __init__(
        self,
        channels: int = 16,
        num_classes: int = 10,
        *,
        batch_norm: bool = False,
        norm: str | None = None,
        groups: int = 4,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        checks.integer("channels", channels, 1)
        checks.integer("num_classes", num_classes, 1)
        checks.one_of("norm", norm, (None, "batch", "group"))
        if batch_norm and norm not in (None, "batch"):
            raise ValueError(f"batch_norm=True asks for norm='batch', got norm={norm!r}")
        norm = "batch" if batch_norm else norm
        if norm == "group":
            checks.integer("groups", groups, 1, channels)
            if channels % groups:
                raise ValueError(f"groups must divide channels={channels}, got {groups}")
        kwargs = {"device": device, "dtype": dtype}

        def norm_layer(c: int) -> nn.Module:
            if norm == "batch":
                return nn.BatchNorm2d(c, **kwargs)
            if norm == "group":
                return nn.GroupNorm(groups, c, **kwargs)
            return nn.Identity()

        self.features = nn.Sequential(
            nn.Conv2d(1, channels, 3, padding=1, **kwargs),
            norm_layer(channels),
            nn.ReLU(),
            nn.Conv2d(channels, 2 * channels, 3, padding=1, **kwargs),
            norm_layer(2 * channels),
            nn.ReLU(),
            nn.MaxPool2d(2),
        )
        self.classifier = nn.Linear(2 * channels * 4 * 4, num_classes, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        """Class scores (logits) for images ``x`` of shape ``(B, 1, 8, 8)``.

        Raises:
            ValueError: if ``x`` does not have shape ``(B, 1, 8, 8)``.
        """
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 8, 8):
            raise ValueError(f"DigitsCNN expects images of shape (B, 1, 8, 8), got {tuple(x.shape)}")
        return self.classifier(self.features(x).flatten(1))


class OneNeuron(nn.Module):
    r"""The one-hidden-neuron network of the notes: :math:`\hat y = w_2 (w_1 x)`.

    One input, one hidden unit without activation or bias, one output: two scalar
    parameters. With data :math:`x = 1, y = 1` and squared error the loss is
    :math:`L(w_1, w_2) = (1 - w_1 w_2)^2`, whose gradient vanishes at the origin, a
    saddle point (the Hessian there has eigenvalues :math:`\pm 2`), and along the
    hyperbola :math:`w_1 w_2 = 1` of minima.

    Args:
        w1: the initial first weight.
        w2: the initial second weight.
        device: where the parameters live (default: CPU).
        dtype: the parameters' dtype (default: float32).
    """

    def __init__(
        self,
        w1: float = 0.0,
        w2: float = 0.0,
        *,
        device: DeviceLike = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.w1 = nn.Parameter(torch.tensor(float(w1), device=device, dtype=dtype))
        self.w2 = nn.Parameter(torch.tensor(float(w2), device=device, dtype=dtype))

    def forward(self, x: Tensor) -> Tensor:
        """Return :math:`w_2 w_1 x`, the same shape as ``x``."""
        return self.w2 * (self.w1 * x)


@dataclass(frozen=True)
class ParameterCount:
    """How many parameters a model has, in total and per named tensor.

    ``print(count)`` shows a small table; ``int(count)`` is the total.

    Attributes:
        total: the number of scalar parameters.
        trainable: those with ``requires_grad``.
        per_tensor: ``(name, shape, numel)`` for each parameter tensor.
    """

    total: int
    trainable: int
    per_tensor: tuple[tuple[str, tuple[int, ...], int], ...]

    def __int__(self) -> int:
        return self.total

    def __str__(self) -> str:
        name_width = max([len("parameter"), *(len(name) for name, _, _ in self.per_tensor)])
        lines = [f"{'parameter':<{name_width}}  {'shape':<16} {'count':>10}"]
        for name, shape, numel in self.per_tensor:
            lines.append(f"{name:<{name_width}}  {str(shape):<16} {numel:>10,}")
        lines.append(f"{'total':<{name_width}}  {'':<16} {self.total:>10,}")
        if self.trainable != self.total:
            lines.append(f"{'trainable':<{name_width}}  {'':<16} {self.trainable:>10,}")
        return "\n".join(lines)


def count_parameters(model: nn.Module) -> ParameterCount:
    """Count a model's parameters.

    Args:
        model: any module.

    Returns:
        A :class:`ParameterCount`; print it for a per-tensor table.
    """
    per_tensor = tuple((name, tuple(p.shape), p.numel()) for name, p in model.named_parameters())
    total = sum(numel for _, _, numel in per_tensor)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return ParameterCount(total, trainable, per_tensor)


class SpatialTransformer(nn.Module):
    r"""A spatial transformer: predict an affine map from the image, then resample the image.

    A small localisation network reads the image :math:`x` and outputs six numbers,
    the matrix :math:`\theta \in \mathbb{R}^{2 \times 3}`. Each output pixel at
    normalized coordinates :math:`(u, v) \in [-1, 1]^2` is read (bilinearly) from the
    input at

    .. math::

        \begin{pmatrix} u_s \\ v_s \end{pmatrix} = \theta
        \begin{pmatrix} u \\ v \\ 1 \end{pmatrix},
        \qquad \theta = \begin{pmatrix} \theta_{11} & \theta_{12} & t_x \\
        \theta_{21} & \theta_{22} & t_y \end{pmatrix},

    with ``affine_grid`` and ``grid_sample``. The last layer of the localisation network
    starts with zero weights and the bias of the identity, :math:`\theta = (I \mid 0)`,
    so at initialization the module returns its input unchanged and training moves it
    away from the identity only as far as the loss asks.

    Shapes: ``(B, C, H, W) -> (B, C, H, W)``.

    Args:
        in_shape: the input's ``(C, H, W)``.
        hidden: units in the hidden layer of the localisation network, at least 1.
        device: where the parameters live (default: CPU).
        dtype: the parameters' dtype (default: float32).

    Raises:
        ValueError: if ``hidden`` or a size in ``in_shape`` is not a positive integer.

    References:
        Jaderberg, Simonyan, Zisserman and Kavukcuoglu, "Spatial Transformer Networks",
        NeurIPS 2015.
    """

    def __init__(
        self,
        in_shape: tuple[int, int, int] = (1, 8, 8),
        hidden: int = 32,
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        for name, value in (("hidden", hidden), *((f"in_shape[{i}]", v) for i, v in enumerate(in_shape))):
            checks.integer(name, value, 1)
        kwargs = {"device": device, "dtype": dtype}
        self.localization = nn.Sequential(
            nn.Flatten(),
            nn.Linear(math.prod(in_shape), hidden, **kwargs),
            nn.ReLU(),
            nn.Linear(hidden, 6, **kwargs),
        )
        last = self.localization[-1]
        with torch.no_grad():  # start at the identity transformation
            last.weight.zero_()
            last.bias.copy_(torch.tensor([1.0, 0.0, 0.0, 0.0, 1.0, 0.0]))

    def theta(self, x: Tensor) -> Tensor:
        """The affine matrices predicted for a batch, shape ``(B, 2, 3)``."""
        return self.localization(x).view(-1, 2, 3)

    def forward(self, x: Tensor) -> Tensor:
        """Resample each image of ``x`` (shape ``(B, C, H, W)``) with its predicted affine map."""
        grid = F.affine_grid(self.theta(x), list(x.shape), align_corners=False)  # (B, H, W, 2)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
