r"""Activation functions written from scratch, and their derivatives.

Each activation :math:`\phi` comes three ways:

- a function of a tensor (:func:`sigmoid`, :func:`tanh`, :func:`relu`,
  :func:`leaky_relu`, :func:`elu`), differentiable by autograd;
- its derivative :math:`\phi'` as a function (:func:`sigmoid_grad`, ...), for plots and
  for reasoning about vanishing gradients;
- an ``nn.Module`` (:class:`Sigmoid`, :class:`Tanh`, :class:`ReLU`, :class:`LeakyReLU`,
  :class:`ELU`) with torch's names and defaults, so that ``lib.activations.ELU()`` and
  ``torch.nn.ELU()`` are interchangeable in a model.

The formulas are written so that no intermediate value overflows: :func:`sigmoid` and
:func:`tanh` only ever exponentiate :math:`-|x|`, and :func:`elu` only exponentiates
:math:`\min(x, 0)`, so values and gradients stay finite for any finite input.
"""

import torch
from torch import Tensor, nn

from lib import checks

__all__ = [
    "sigmoid",
    "sigmoid_grad",
    "tanh",
    "tanh_grad",
    "relu",
    "relu_grad",
    "leaky_relu",
    "leaky_relu_grad",
    "elu",
    "elu_grad",
    "Sigmoid",
    "Tanh",
    "ReLU",
    "LeakyReLU",
    "ELU",
]

# --------------------------------------------------------------------------- functions


def sigmoid(x: Tensor) -> Tensor:
    r"""The logistic sigmoid, computed without overflow.

    .. math::

        \sigma(x) = \frac{1}{1 + e^{-x}} =
        \begin{cases} \dfrac{1}{1 + e^{-|x|}} & x \ge 0, \\[1ex]
        \dfrac{e^{-|x|}}{1 + e^{-|x|}} & x < 0, \end{cases}

    Both branches exponentiate :math:`-|x| \le 0`, so nothing overflows, even for
    :math:`|x| = 10^4` where :math:`e^{|x|}` is infinite in any floating-point type.

    Args:
        x: any tensor.

    Returns:
        :math:`\sigma(x)`, same shape and dtype, in :math:`[0, 1]`.
    """
    positive = x >= 0
    z = torch.exp(torch.where(positive, -x, x))  # e^{-|x|} in (0, 1]; slope -1 at 0, not abs's 0
    return torch.where(positive, 1 / (1 + z), z / (1 + z))


def sigmoid_grad(x: Tensor) -> Tensor:
    r"""The derivative of the sigmoid, :math:`\sigma'(x) = \sigma(x)\,(1 - \sigma(x)) \le 1/4`.

    Args:
        x: any tensor.

    Returns:
        :math:`\sigma'(x)`, same shape and dtype.
    """
    s = sigmoid(x)
    return s * (1 - s)


def tanh(x: Tensor) -> Tensor:
    r"""The hyperbolic tangent, computed without overflow.

    .. math::

        \tanh(x) = \frac{e^{x} - e^{-x}}{e^{x} + e^{-x}} = 2\sigma(2x) - 1
        = \operatorname{sign}(x)\, \frac{1 - e^{-2|x|}}{1 + e^{-2|x|}}.

    The last form is evaluated with ``expm1`` so that small :math:`|x|` keep their
    relative precision and large :math:`|x|` do not overflow.

    Args:
        x: any tensor.

    Returns:
        :math:`\tanh(x)`, same shape and dtype, in :math:`[-1, 1]`.
    """
    positive = x >= 0
    a = torch.where(positive, x, -x)  # |x|, with slope +1 at 0 so that autograd gives tanh'(0) = 1
    e = torch.expm1(-2 * a)  # e^{-2|x|} - 1, in (-1, 0]
    t = -e / (2 + e)  # (1 - e^{-2a}) / (1 + e^{-2a})
    return torch.where(positive, t, -t)


def tanh_grad(x: Tensor) -> Tensor:
    r"""The derivative of tanh, :math:`\tanh'(x) = 1 - \tanh^2(x) \le 1`.

    Args:
        x: any tensor.

    Returns:
        :math:`\tanh'(x)`, same shape and dtype.
    """
    return 1 - tanh(x) ** 2


def relu(x: Tensor) -> Tensor:
    r"""The rectified linear unit, :math:`\mathrm{ReLU}(x) = \max(0, x)`.

    Args:
        x: any tensor.

    Returns:
        :math:`\max(0, x)` element-wise, same shape and dtype.
    """
    return torch.where(x > 0, x, torch.zeros_like(x))


def relu_grad(x: Tensor) -> Tensor:
    r"""The derivative of ReLU: 1 where :math:`x > 0`, 0 elsewhere (0 at :math:`x = 0`, as torch).

    Args:
        x: any tensor.

    Returns:
        :math:`\mathbb{1}[x > 0]`, same shape and dtype.
    """
    return (x > 0).to(x.dtype)


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    r"""The leaky ReLU: a small slope :math:`a` instead of zero for negative inputs.

    .. math::

        \mathrm{LeakyReLU}(x) = \begin{cases} x & x > 0, \\ a x & x \le 0, \end{cases}
        \qquad = \max(x, a x) \text{ for } 0 \le a \le 1.

    Args:
        x: any tensor.
        negative_slope: the slope :math:`a` for negative inputs, at least 0.

    Returns:
        The activation, same shape and dtype.

    Raises:
        ValueError: if ``negative_slope`` is negative or not finite.
    """
    checks.number("negative_slope", negative_slope, 0)
    return torch.where(x > 0, x, negative_slope * x)


def leaky_relu_grad(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    r"""The derivative of the leaky ReLU: 1 where :math:`x > 0`, :math:`a` elsewhere.

    Args:
        x: any tensor.
        negative_slope: the slope :math:`a` for negative inputs, at least 0.

    Returns:
        The derivative, same shape and dtype.

    Raises:
        ValueError: if ``negative_slope`` is negative or not finite.
    """
    checks.number("negative_slope", negative_slope, 0)
    return torch.where(x > 0, torch.ones_like(x), torch.full_like(x, negative_slope))


def elu(x: Tensor, alpha: float = 1.0) -> Tensor:
    r"""The exponential linear unit (Clevert et al., 2016).

    .. math::

        \mathrm{ELU}(x) = \begin{cases} x & x > 0, \\ \alpha\,(e^{x} - 1) & x \le 0. \end{cases}

    Negative inputs saturate smoothly at :math:`-\alpha` instead of being cut to zero,
    so the gradient there is :math:`\alpha e^{x} > 0`. The exponential is taken of
    :math:`\min(x, 0)` only, so large positive inputs do not overflow.

    Args:
        x: any tensor.
        alpha: the negative saturation value :math:`\alpha`, at least 0.

    Returns:
        The activation, same shape and dtype.

    Raises:
        ValueError: if ``alpha`` is negative or not finite.
    """
    checks.number("alpha", alpha, 0)
    return torch.where(x > 0, x, alpha * torch.expm1(torch.clamp(x, max=0)))


def elu_grad(x: Tensor, alpha: float = 1.0) -> Tensor:
    r"""The derivative of ELU: 1 where :math:`x > 0`, :math:`\alpha e^{x}` elsewhere.

    Args:
        x: any tensor.
        alpha: the negative saturation value :math:`\alpha`, at least 0.

    Returns:
        The derivative, same shape and dtype.

    Raises:
        ValueError: if ``alpha`` is negative or not finite.
    """
    checks.number("alpha", alpha, 0)
    return torch.where(x > 0, torch.ones_like(x), alpha * torch.exp(torch.clamp(x, max=0)))


# --------------------------------------------------------------------------- modules


class Sigmoid(nn.Module):
    """:func:`sigmoid` as a module, interchangeable with ``torch.nn.Sigmoid``."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply the sigmoid element-wise."""
        return sigmoid(x)


class Tanh(nn.Module):
    """:func:`tanh` as a module, interchangeable with ``torch.nn.Tanh``."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply tanh element-wise."""
        return tanh(x)


class ReLU(nn.Module):
    """:func:`relu` as a module, interchangeable with ``torch.nn.ReLU``."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply ReLU element-wise."""
        return relu(x)


class LeakyReLU(nn.Module):
    """:func:`leaky_relu` as a module, interchangeable with ``torch.nn.LeakyReLU``.

    Args:
        negative_slope: the slope for negative inputs, at least 0.

    Raises:
        ValueError: if ``negative_slope`` is negative or not finite.
    """

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        checks.number("negative_slope", negative_slope, 0)
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        """Apply the leaky ReLU element-wise."""
        return leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        """Show the slope when the module is printed."""
        return f"negative_slope={self.negative_slope}"


class ELU(nn.Module):
    """:func:`elu` as a module, interchangeable with ``torch.nn.ELU``.

    Args:
        alpha: the negative saturation value, at least 0.

    Raises:
        ValueError: if ``alpha`` is negative or not finite.
    """

    def __init__(self, alpha: float = 1.0) -> None:
        super().__init__()
        checks.number("alpha", alpha, 0)
        self.alpha = alpha

    def forward(self, x: Tensor) -> Tensor:
        """Apply ELU element-wise."""
        return elu(x, self.alpha)

    def extra_repr(self) -> str:
        """Show alpha when the module is printed."""
        return f"alpha={self.alpha}"
