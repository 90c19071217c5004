r"""Curvature of a loss: Hessian-vector products, eigenvalues, trace and spectral density.

Every function here works on a loss given as a zero-argument callable that returns a
scalar tensor, together with the list of parameter tensors the loss depends on::

    def loss():
        return torch.nn.functional.mse_loss(model(x), y)

    params = list(model.parameters())
    top, vectors = lib.hessian.eigsh(loss, params, k=1)

The same call serves a two-parameter toy and a network with a million parameters, on the
CPU or a GPU, in float32 or float64: the Hessian

.. math::

    H = \nabla^2_\theta L(\theta) \in \mathbb{R}^{n \times n}

is never formed (except by :func:`hessian`, for small models); everything is built on the
Hessian-vector product :math:`Hv`, which costs about one extra backward pass.

Vectors in the parameter space are flat tensors of length ``n`` (the total number of
parameters), laid out in the order of ``params``; :func:`flatten` and :func:`unflatten`
convert between the flat vector and a list shaped like ``params``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from lib import checks

__all__ = [
    "Classification",
    "HVPOperator",
    "SpectralDensity",
    "TraceEstimate",
    "classify",
    "eigsh",
    "escape_direction",
    "flatten",
    "hessian",
    "lanczos",
    "power_method",
    "spectral_density",
    "trace",
    "unflatten",
]

_WHICH = ("LA", "SA", "LM")


# --------------------------------------------------------------------------------------
# Flat vectors in parameter space
# --------------------------------------------------------------------------------------


def flatten(tensors: Sequence[Tensor]) -> Tensor:
    """Concatenate tensors into one flat vector, in the given order.

    Args:
        tensors: tensors of any shapes, on one device and of one dtype.

    Returns:
        A 1-D tensor of length ``sum(t.numel() for t in tensors)``.
    """
    return torch.cat([t.reshape(-1) for t in tensors])


def unflatten(vector: Tensor, like: Sequence[Tensor]) -> list[Tensor]:
    """Split a flat vector into tensors shaped like ``like`` (the inverse of :func:`flatten`).

    Args:
        vector: a 1-D tensor of length ``sum(t.numel() for t in like)``.
        like: the tensors whose shapes (and order) to follow, usually the parameters.

    Returns:
        A list of views of ``vector``, one per tensor of ``like``.

    Raises:
        ValueError: if ``vector`` is not 1-D or its length does not match ``like``.
    """
    sizes = [t.numel() for t in like]
    if vector.dim() != 1 or vector.numel() != sum(sizes):
        raise ValueError(
            f"vector must be 1-D with {sum(sizes)} entries (one per parameter), "
            f"got shape {tuple(vector.shape)}"
        )
    return [chunk.view_as(t) for chunk, t in zip(vector.split(sizes), like, strict=True)]


def _check_params(params: Sequence[Tensor]) -> list[Tensor]:
    params = list(params)
    if len(params) == 0:
        raise ValueError("params must be a non-empty list of tensors with requires_grad=True")
    for i, p in enumerate(params):
        if not isinstance(p, Tensor):
            raise ValueError(f"params[{i}] must be a tensor, got {type(p).__name__}")
        if not p.requires_grad:
            raise ValueError(
                f"params[{i}] (shape {tuple(p.shape)}) does not require grad: "
                "call requires_grad_() on it or pass only trainable parameters"
            )
        if not p.is_floating_point():
            raise ValueError(f"params[{i}] must be a floating-point tensor, got {p.dtype}")
    return params


def _evaluate(loss: Callable[[], Tensor], params: Sequence[Tensor]) -> Tensor:
    if not callable(loss):
        raise ValueError(
            f"loss must be a zero-argument callable returning a scalar, got {type(loss).__name__}"
        )
    value = loss()
    if not isinstance(value, Tensor) or value.numel() != 1:
        shape = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
        raise ValueError(f"loss() must return a scalar tensor (one element), got {shape}")
    if not value.requires_grad:
        raise ValueError("loss() does not depend on params: its result does not require grad")
    return value.reshape(())


# --------------------------------------------------------------------------------------
# Hessian-vector products
# --------------------------------------------------------------------------------------


class HVPOperator:
    r"""The Hessian of a loss at the current parameters, as a linear operator :math:`v \mapsto Hv`.

    The gradient :math:`g(\theta) = \nabla L(\theta)` is computed once with its graph kept
    (``create_graph=True``). A product is then the gradient of :math:`g^\top v` with
    respect to :math:`\theta` (Pearlmutter's trick):

    .. math::

        Hv = \nabla_\theta \left( \nabla_\theta L(\theta)^\top v \right),

    one backward pass through the gradient's graph, so each product after the first costs
    about one extra backward pass and the dense :math:`n \times n` matrix is never formed.
    Build a new operator after the parameters change. It enables gradients for its own
    computations, so it also works when called inside ``torch.no_grad()``.

    Args:
        loss: zero-argument callable returning the scalar loss.
        params: the tensors the loss depends on (all with ``requires_grad=True``).

    Attributes:
        dim: the number of parameters :math:`n`.
        num_products: how many products this operator has computed.
        loss_value: the loss at the point, detached.
        gradient: the flat gradient at the point, detached.

    Raises:
        ValueError: if ``loss()`` is not a scalar depending on ``params``, or a parameter
            does not require grad.

    References:
        B. A. Pearlmutter, "Fast exact multiplication by the Hessian", Neural Computation, 1994.
    """

    def __init__(self, loss: Callable[[], Tensor], params: Sequence[Tensor]) -> None:
        self.params = _check_params(params)
        with torch.enable_grad():  # works inside torch.no_grad() too
            value = _evaluate(loss, self.params)
            grads = torch.autograd.grad(value, self.params, create_graph=True, allow_unused=True)
            # a parameter the loss does not touch has zero gradient and zero curvature
            grads = [torch.zeros_like(p) if g is None else g for g, p in zip(grads, self.params, strict=True)]
            self._flat_grad = flatten(grads)
        self.dim = self._flat_grad.numel()
        self.num_products = 0
        self.loss_value = value.detach()
        self.gradient = self._flat_grad.detach()

    @property
    def dtype(self) -> torch.dtype:
        """The dtype of the parameters (and of the vectors this operator takes)."""
        return self._flat_grad.dtype

    @property
    def device(self) -> torch.device:
        """The device of the parameters (and of the vectors this operator takes)."""
        return self._flat_grad.device

    def __call__(self, v: Tensor) -> Tensor:
        """Return :math:`Hv` for a flat vector ``v`` of length ``dim``.

        Args:
            v: a 1-D tensor with one entry per parameter, in the order of ``params``.

        Returns:
            The flat product :math:`Hv`, detached, same dtype and device as the parameters.

        Raises:
            ValueError: if ``v`` does not have shape ``(dim,)``.
        """
        if v.shape != (self.dim,):
            raise ValueError(
                f"v must have shape ({self.dim},) (one entry per parameter), got {tuple(v.shape)}"
            )
        self.num_products += 1
        if not self._flat_grad.requires_grad:  # the loss is linear in params: H = 0
            return torch.zeros_like(self.gradient)
        v = v.to(dtype=self.dtype, device=self.device)
        # Hv = d/dtheta (g . v); retain_graph keeps g's graph for the next product
        with torch.enable_grad():
            hv = torch.autograd.grad(
                self._flat_grad, self.params, grad_outputs=v, retain_graph=True, allow_unused=True
            )
        hv = [torch.zeros_like(p) if h is None else h for h, p in zip(hv, self.params, strict=True)]
        return flatten(hv).detach()


def hessian(loss: Callable[[], Tensor], params: Sequence[Tensor]) -> Tensor:
    r"""The dense Hessian :math:`H_{ij} = \partial^2 L / \partial\theta_i \partial\theta_j`, for small models.

    Built column by column, :math:`H e_j` for each basis vector :math:`e_j`, so it costs
    ``n`` Hessian-vector products and :math:`n^2` memory. The rows and columns follow the
    flat order of ``params`` (see :func:`flatten`).

    Args:
        loss: zero-argument callable returning the scalar loss.
        params: the tensors the loss depends on (all with ``requires_grad=True``).

    Returns:
        The symmetric ``(n, n)`` Hessian, on the device and in the dtype of ``params``.

    Raises:
        ValueError: for a non-scalar loss or parameters without grad.
    """
    op = HVPOperator(loss, params)
    eye = torch.eye(op.dim, dtype=op.dtype, device=op.device)
    columns = [op(eye[j]) for j in range(op.dim)]
    h = torch.stack(columns, dim=1)  # (n, n), column j is H e_j
    # symmetrize away the rounding differences between H_ij and H_ji
    return 0.5 * (h + h.T)


# --------------------------------------------------------------------------------------
# Extreme eigenvalues: Lanczos and power iteration
# --------------------------------------------------------------------------------------


def _order(values: Tensor, which: str) -> Tensor:
    """Indices of ``values`` from most to least wanted."""
    if which == "LA":
        return torch.argsort(values, descending=True)
    if which == "SA":
        return torch.argsort(values)
    return torch.argsort(values.abs(), descending=True)


def _random_vector(
    dim: int, dtype: torch.dtype, device: torch.device, generator: torch.Generator, rademacher: bool = False
) -> Tensor:
    """A Gaussian (or Rademacher) vector drawn from a CPU generator, then moved to ``device``.

    Drawing on the CPU makes a seed give the same vector on every device.
    """
    if rademacher:
        z = torch.randint(0, 2, (dim,), generator=generator).to(dtype)
        z = 2.0 * z - 1.0
    else:
        z = torch.randn(dim, generator=generator, dtype=dtype)
    return z.to(device)


def _default_tol(dtype: torch.dtype) -> float:
    return math.sqrt(torch.finfo(dtype).eps)


#: Restarts after a breakdown draw from their own stream, independent of the start vector.
_RESTART_SEED = 2**31 - 1


@dataclass
class _Krylov:
    """The state of Lanczos after ``m`` steps: :math:`T_m`, the basis and the dropped couplings."""

    alphas: list[float]  # diagonal of T: alpha_1 .. alpha_m
    betas: list[float]  # betas[j - 1] couples q_j and q_{j+1}; betas[-1] is beta_{m+1}
    basis: Tensor  # (m, n), the rows q_1 .. q_m
    dropped: float = 0.0  # sum of the betas set to zero at breakdowns

    def ritz(self) -> tuple[Tensor, Tensor]:
        """Eigenpairs :math:`T_m s_i = \\theta_i s_i` (float64, on the CPU)."""
        m = len(self.alphas)
        t = torch.diag(torch.tensor(self.alphas, dtype=torch.float64))
        if m > 1:
            off = torch.tensor(self.betas[: m - 1], dtype=torch.float64)
            t = t + torch.diag(off, 1) + torch.diag(off, -1)
        return torch.linalg.eigh(t)


def _orthogonalize(w: Tensor, q: Tensor) -> Tensor:
    """Remove from ``w`` its components along the rows of ``q``: two classical Gram-Schmidt passes.

    One pass leaves rounding errors of order :math:`\\varepsilon\\,\\lVert w\\rVert/\\lVert w'\\rVert`
    when most of ``w`` is removed; the second pass makes ``w`` orthogonal to working
    precision ("twice is enough", Giraud et al., 2005).
    """
    w = w - q.T @ (q @ w)
    return w - q.T @ (q @ w)


def _lanczos_steps(
    matvec: Callable[[Tensor], Tensor], v0: Tensor, steps: int, generator: torch.Generator
) -> Iterator[_Krylov]:
    r"""Lanczos with complete reorthogonalization; yields the state after each step.

    Golub and Van Loan's recurrence (Algorithm 10.1.1 with complete reorthogonalization,
    section 10.3.1), with :math:`q_1 = v_0 / \lVert v_0 \rVert`:

    .. math::

        & r_j = A q_j, \quad \alpha_j = q_j^\top r_j, \\
        & r_j \leftarrow r_j - Q_j (Q_j^\top r_j) \ \text{(twice)}, \\
        & \beta_j = \lVert r_j \rVert, \quad q_{j+1} = r_j / \beta_j,

    where :math:`Q_j = [q_1, \dots, q_j]`. The first Gram-Schmidt pass against all of
    :math:`Q_j` performs the three-term step :math:`r_j - \alpha_j q_j - \beta_{j-1} q_{j-1}`
    (the other coefficients are rounding errors) and the second pass makes the basis
    orthonormal to working precision.

    Breakdown: :math:`\beta_j` at the rounding level of the operator,
    :math:`\beta_j \le \sqrt{n}\,\varepsilon\,\lVert T_j \rVert` (the norm estimated by the
    largest :math:`\lvert\alpha_i\rvert, \beta_i` so far, so the test does not depend on
    the operator's scale), means :math:`Q_j` spans an invariant subspace. :math:`\beta_j`
    is then set to zero (added to ``dropped``, which bounds the error this makes) and
    :math:`q_{j+1}` is a random unit vector orthogonal to :math:`Q_j`.
    """
    dim = v0.numel()
    steps = min(steps, dim)
    eps = torch.finfo(v0.dtype).eps
    breakdown = math.sqrt(dim) * eps
    # the basis as rows of a buffer that doubles when full (no copy of Q per step)
    basis = torch.empty(min(steps, 16) + 1, dim, dtype=v0.dtype, device=v0.device)
    basis[0] = v0 / torch.linalg.vector_norm(v0)
    krylov = _Krylov([], [], basis[:0])
    norm_estimate = 0.0  # largest |alpha_i|, beta_i so far: a lower bound of ||A||
    for j in range(steps):
        q_j = basis[: j + 1]  # Q_j, a view
        r = matvec(basis[j])
        alpha = torch.dot(basis[j], r).item()
        r = _orthogonalize(r, q_j)
        beta = torch.linalg.vector_norm(r).item()
        norm_estimate = max(norm_estimate, abs(alpha), beta)
        invariant = beta <= breakdown * norm_estimate
        if invariant:
            krylov.dropped += beta
            beta = 0.0
        krylov.alphas.append(alpha)
        krylov.betas.append(beta)
        krylov.basis = q_j
        yield krylov
        if j + 1 == steps:
            return
        if invariant:
            r = _random_unit_orthogonal(q_j, generator)
        else:
            r = r / beta
        if j + 1 == basis.shape[0]:
            grown = torch.empty(min(2 * basis.shape[0], dim + 1), dim, dtype=v0.dtype, device=v0.device)
            grown[: j + 1] = basis
            basis = grown
        basis[j + 1] = r


def _random_unit_orthogonal(q: Tensor, generator: torch.Generator) -> Tensor:
    """A random unit vector orthogonal to the rows of ``q`` (which has fewer rows than columns).

    A random vector keeps a fraction of about :math:`\\sqrt{(n - j)/n}` of its norm after
    the projection; only if less than :math:`\\sqrt{\\varepsilon}` of it survives would
    rounding dominate the result, and then another vector is drawn.
    """
    rounding_level = math.sqrt(torch.finfo(q.dtype).eps)
    while True:
        w = _random_vector(q.shape[1], q.dtype, q.device, generator)
        w = _orthogonalize(w / torch.linalg.vector_norm(w), q)
        norm = torch.linalg.vector_norm(w).item()
        if norm > rounding_level:
            return w / norm


def lanczos(
    matvec: Callable[[Tensor], Tensor],
    v0: Tensor,
    k: int = 6,
    which: str = "LA",
    *,
    max_iter: int | None = None,
    tol: float | None = None,
    callback: Callable[[int, Tensor], bool | None] | None = None,
) -> tuple[Tensor, Tensor]:
    r"""The ``k`` extreme eigenpairs of a symmetric operator, by Lanczos with full reorthogonalization.

    Lanczos builds an orthonormal basis :math:`Q_m` of the Krylov space
    :math:`\mathrm{span}\{v_0, Av_0, \dots, A^{m-1}v_0\}` in which :math:`A` is the
    tridiagonal matrix :math:`T_m = Q_m^\top A Q_m`, one product :math:`Aq_j` per step:

    .. math::

        & r_j = A q_j, \quad \alpha_j = q_j^\top r_j, \\
        & r_j \leftarrow r_j - Q_j (Q_j^\top r_j) \ \text{(twice)}, \\
        & \beta_j = \lVert r_j \rVert, \quad q_{j+1} = r_j / \beta_j

    (Golub and Van Loan, Algorithm 10.1.1 with complete reorthogonalization: the first
    Gram-Schmidt pass against all of :math:`Q_j` performs the three-term step
    :math:`r_j - \alpha_j q_j - \beta_{j-1} q_{j-1}`, the second keeps the basis
    orthonormal in floating point, so no spurious copies of converged eigenvalues appear).
    The eigenpairs :math:`T_m s_i = \theta_i s_i` give Ritz pairs :math:`(\theta_i, Q_m s_i)`,
    whose extreme members converge quickly to the extreme eigenpairs of :math:`A`, with
    a residual known without another product:

    .. math::

        \lVert A Q_m s_i - \theta_i Q_m s_i \rVert = \beta_m \lvert s_{m,i} \rvert.

    The iteration stops once the ``k`` wanted pairs have residual at most
    :math:`\mathrm{tol} \cdot \max_i \lvert\theta_i\rvert`. Every test is relative to the
    operator's scale, so a Hessian of norm :math:`10^{-6}` is treated like one of norm
    :math:`10^{6}`. A :math:`\beta_j` at rounding level
    (:math:`\le \sqrt{n}\,\varepsilon\,\lVert T_j\rVert`) means an invariant subspace was
    found: the iteration continues from a random vector orthogonal to :math:`Q_j`, and
    the dropped :math:`\beta_j` is added to every residual bound, so convergence is never
    claimed for a pair that has not converged.

    Accuracy: each returned eigenvalue is within :math:`\mathrm{tol}\cdot\max\lvert\theta\rvert`
    of an eigenvalue of :math:`A` (the residual bound), and for an eigenvalue separated by
    a gap :math:`\delta` from the rest, within about residual²/δ. In the tests
    (``tests/test_hessian.py``; spectra at scales 1e-4, 1 and 1e4, clustered and spread,
    n up to 2000) the top three eigenvalues agree with ``torch.linalg.eigvalsh`` to about
    4e-7 in float32 and 3e-15 in float64, relative to the largest, with the default ``tol``
    (the tests assert 1e-4 and 1e-8).

    Args:
        matvec: the operator, a function ``v -> A v`` on flat vectors (for instance an
            :class:`HVPOperator`).
        v0: the starting vector; it fixes the dimension, dtype and device.
        k: how many eigenpairs, ``1 <= k <= n``.
        which: ``"LA"`` largest algebraic, ``"SA"`` smallest algebraic, ``"LM"`` largest
            magnitude (as in SciPy's ``eigsh``).
        max_iter: the most products (Krylov dimension); defaults to ``min(n, max(20 * k, 100))``.
        tol: relative residual at which a Ritz pair counts as converged; defaults to the
            square root of the dtype's machine epsilon.
        callback: called as ``callback(j, values)`` after the ``j``-th product with the
            current ``k`` wanted Ritz values (most wanted first); returning True stops.

    Returns:
        ``(eigenvalues, eigenvectors)``: eigenvalues of shape ``(k,)``, most wanted first
        (descending for ``"LA"`` and ``"LM"`` by magnitude, ascending for ``"SA"``; SciPy
        sorts all in ascending order), and unit eigenvectors as the columns of an
        ``(n, k)`` tensor, in the dtype and on the device of ``v0``.

    Raises:
        ValueError: if ``k`` is outside ``[1, n]``, ``which`` is unknown, ``max_iter < k``
            or ``v0`` is not a non-zero 1-D tensor.

    Warns:
        RuntimeWarning: if the wanted pairs did not converge within ``max_iter`` products.

    References:
        C. Lanczos, "An iteration method for the solution of the eigenvalue problem of
        linear differential and integral operators", J. Res. Nat. Bur. Standards, 1950.
        G. H. Golub and C. F. Van Loan, *Matrix Computations*, 4th ed., sections 10.1 and 10.3.
    """
    checks.one_of("which", which, _WHICH)
    if v0.dim() != 1 or not torch.linalg.vector_norm(v0) > 0:
        raise ValueError(f"v0 must be a non-zero 1-D tensor, got shape {tuple(v0.shape)}")
    dim = v0.numel()
    k = checks.integer("k", k, 1, dim)
    if max_iter is None:
        max_iter = min(dim, max(20 * k, 100))
    max_iter = min(checks.integer("max_iter", max_iter, k), dim)
    tol = _default_tol(v0.dtype) if tol is None else checks.number("tol", tol, 0, low_open=True)

    converged = False
    restarts = checks.generator(_RESTART_SEED)
    for krylov in _lanczos_steps(matvec, v0, max_iter, restarts):
        m = len(krylov.alphas)
        if m < k:
            continue
        theta, s = krylov.ritz()
        idx = _order(theta, which)[:k]
        # residual bound of each wanted Ritz pair, plus what breakdowns dropped
        residuals = abs(krylov.betas[-1]) * s[m - 1, idx].abs() + krylov.dropped
        converged = m == dim or bool((residuals <= tol * theta.abs().max()).all())
        if callback is not None and callback(m, theta[idx].to(v0.dtype)):
            converged = True  # the caller decided to stop
        if converged:
            break
    if not converged:
        warnings.warn(
            f"Lanczos did not converge to tol={tol:.1e} in max_iter={max_iter} products; "
            "raise max_iter or tol",
            RuntimeWarning,
            stacklevel=2,
        )
    theta, s = krylov.ritz()
    idx = _order(theta, which)[:k]
    values = theta[idx].to(dtype=v0.dtype, device=v0.device)
    # Ritz vectors Q_m s_i, (n, m) @ (m, k)
    vectors = krylov.basis.T @ s[:, idx].to(dtype=v0.dtype, device=v0.device)
    vectors = vectors / torch.linalg.vector_norm(vectors, dim=0, keepdim=True)
    return values, vectors


def eigsh(
    loss: Callable[[], Tensor],
    params: Sequence[Tensor],
    k: int = 6,
    which: str = "LA",
    *,
    max_iter: int | None = None,
    tol: float | None = None,
    seed: int = 0,
) -> tuple[Tensor, Tensor]:
    r"""The ``k`` extreme eigenpairs of the Hessian of ``loss``, by Lanczos (see :func:`lanczos`).

    .. math::

        H u_i = \lambda_i u_i, \qquad H = \nabla^2_\theta L(\theta),

    using only Hessian-vector products from one :class:`HVPOperator` and a seeded random
    start vector.

    Args:
        loss: zero-argument callable returning the scalar loss.
        params: the tensors the loss depends on (all with ``requires_grad=True``).
        k: how many eigenpairs, ``1 <= k <= n`` (the number of parameters).
        which: ``"LA"`` largest algebraic, ``"SA"`` smallest algebraic, ``"LM"`` largest
            magnitude.
        max_iter: the most Hessian-vector products; see :func:`lanczos`.
        tol: relative residual for convergence; see :func:`lanczos`.
        seed: seed of the random start vector.

    Returns:
        ``(eigenvalues, eigenvectors)``: shape ``(k,)`` most wanted first, and unit
        eigenvectors as the columns of an ``(n, k)`` tensor in the flat order of ``params``.

    Raises:
        ValueError: for a non-scalar loss, parameters without grad, ``k`` outside
            ``[1, n]`` or an unknown ``which``.
    """
    op = HVPOperator(loss, params)
    v0 = _random_vector(op.dim, op.dtype, op.device, checks.generator(seed))
    return lanczos(op, v0, k, which, max_iter=max_iter, tol=tol)


def power_method(
    matvec: Callable[[Tensor], Tensor],
    v0: Tensor,
    *,
    max_iter: int = 1000,
    tol: float | None = 1e-6,
    callback: Callable[[int, float], bool | None] | None = None,
    error_tol: float | None = None,
) -> tuple[float, Tensor]:
    r"""The eigenvalue of largest magnitude of a symmetric operator, by power iteration.

    .. math::

        v_{t+1} = \frac{A v_t}{\lVert A v_t \rVert}, \qquad
        \lambda_t = v_t^\top A v_t \ \text{(Rayleigh quotient)}.

    The error shrinks like :math:`(\lambda_2 / \lambda_1)^{2t}`, slowly when the two top
    magnitudes are close; Lanczos (:func:`lanczos`) uses the same products far better.
    Stops when :math:`\lvert \lambda_t - \lambda_{t-1} \rvert \le \mathrm{tol}\,\lvert\lambda_t\rvert`.
    That bounds the *change*, not the error: the estimate still moves by about the change
    times :math:`q/(1-q)`, :math:`q = (\lambda_2/\lambda_1)^2`, so at a gap ratio of 0.98 the
    default stops 2.4e-5 (relative) short. ``error_tol`` bounds the error instead: for a
    symmetric operator some eigenvalue lies within the residual
    :math:`\lVert A v_t - \lambda_t v_t \rVert` of :math:`\lambda_t`, so stopping once it is
    :math:`\le \mathrm{error\_tol}\,\lvert\lambda_t\rvert` guarantees that bound (for the
    eigenvalue the iteration converges to, the largest in magnitude).

    Args:
        matvec: the operator, a function ``v -> A v`` on flat vectors.
        v0: the starting vector; it fixes the dimension, dtype and device.
        max_iter: the most products.
        tol: relative change of the Rayleigh quotient at which to stop; None never stops
            on the change (only on ``max_iter`` or the callback), which matters in float32,
            where consecutive estimates can be equal long before convergence.
        callback: called as ``callback(t, eigenvalue)`` after the ``t``-th product;
            returning True stops.
        error_tol: stop once the residual is at most ``error_tol`` times the estimate
            (an error bound); None (the default) leaves the stop to ``tol``.

    Returns:
        ``(eigenvalue, eigenvector)``: the estimate as a float and the unit vector.

    Raises:
        ValueError: if ``max_iter < 1``, ``tol <= 0`` or ``v0`` is not a non-zero 1-D tensor.

    References:
        R. von Mises and H. Pollaczek-Geiringer, "Praktische Verfahren der
        Gleichungsauflösung", ZAMM, 1929.
    """
    if v0.dim() != 1 or not torch.linalg.vector_norm(v0) > 0:
        raise ValueError(f"v0 must be a non-zero 1-D tensor, got shape {tuple(v0.shape)}")
    checks.integer("max_iter", max_iter, 1)
    if tol is not None:
        checks.number("tol", tol, 0, low_open=True)
    if error_tol is not None:
        checks.number("error_tol", error_tol, 0, low_open=True)
    v = v0 / torch.linalg.vector_norm(v0)
    eigenvalue = math.nan
    for t in range(1, max_iter + 1):
        av = matvec(v)
        # Rayleigh quotient lambda_t = v^T A v (v has unit norm)
        new = torch.dot(v, av).item()
        norm = torch.linalg.vector_norm(av)
        if norm == 0:  # v is in the null space: A v = 0
            return 0.0, v
        if error_tol is not None:
            # residual |A v - lambda v|: an eigenvalue lies within it of lambda
            residual = torch.linalg.vector_norm(av - new * v).item()
            if residual <= error_tol * abs(new):
                return new, v
        v = av / norm
        previous, eigenvalue = eigenvalue, new
        if callback is not None and callback(t, eigenvalue):
            break
        if tol is not None and abs(eigenvalue - previous) <= tol * abs(eigenvalue):
            break
    return eigenvalue, v


# --------------------------------------------------------------------------------------
# Trace and spectral density
# --------------------------------------------------------------------------------------


class TraceEstimate(NamedTuple):
    """Hutchinson's estimate of the trace and its standard error."""

    estimate: float
    stderr: float


def trace(
    loss: Callable[[], Tensor], params: Sequence[Tensor], num_samples: int = 100, *, seed: int = 0
) -> TraceEstimate:
    r"""Hutchinson's estimate of :math:`\operatorname{tr} H` from Hessian-vector products.

    For Rademacher vectors :math:`z` (entries :math:`\pm 1` with equal probability),
    :math:`\mathbb{E}[z^\top H z] = \operatorname{tr} H`, so

    .. math::

        \widehat{\operatorname{tr} H} = \frac{1}{N} \sum_{s=1}^{N} z_s^\top H z_s, \qquad
        \mathrm{SE} = \frac{\operatorname{std}(z_s^\top H z_s)}{\sqrt{N}}.

    Args:
        loss: zero-argument callable returning the scalar loss.
        params: the tensors the loss depends on (all with ``requires_grad=True``).
        num_samples: the number of probe vectors :math:`N`, at least 2.
        seed: seed of the probe vectors.

    Returns:
        ``TraceEstimate(estimate, stderr)`` as floats.

    Raises:
        ValueError: for a non-scalar loss, parameters without grad, or ``num_samples < 2``.

    References:
        M. F. Hutchinson, "A stochastic estimator of the trace of the influence matrix for
        Laplacian smoothing splines", Communications in Statistics, 1990.
    """
    checks.integer("num_samples", num_samples, 2)
    op = HVPOperator(loss, params)
    gen = checks.generator(seed)
    samples = []
    for _ in range(num_samples):
        z = _random_vector(op.dim, op.dtype, op.device, gen, rademacher=True)
        # one sample z^T H z
        samples.append(torch.dot(z, op(z)))
    # the statistics in float64 on the host (Apple MPS has no float64)
    values = torch.stack(samples).cpu().double()
    return TraceEstimate(values.mean().item(), (values.std() / math.sqrt(num_samples)).item())


@dataclass(frozen=True)
class SpectralDensity:
    r"""A spectral density as weighted nodes, from stochastic Lanczos quadrature.

    .. math::

        \phi(\lambda) \approx \sum_i w_i \, \delta(\lambda - \lambda_i), \qquad \sum_i w_i = 1.

    Attributes:
        nodes: the quadrature nodes :math:`\lambda_i` (Ritz values), shape ``(m,)``.
        weights: their weights :math:`w_i`, shape ``(m,)``, summing to one.
    """

    nodes: Tensor
    weights: Tensor

    def smooth(self, grid: Tensor, sigma: float | None = None) -> Tensor:
        r"""The density on a grid, each node spread into a Gaussian of width ``sigma``.

        .. math::

            \phi_\sigma(t) = \sum_i w_i \, \frac{1}{\sigma\sqrt{2\pi}}
            \exp\left(-\frac{(t - \lambda_i)^2}{2\sigma^2}\right)

        Args:
            grid: points :math:`t` at which to evaluate, shape ``(g,)``.
            sigma: kernel width; defaults to 1% of the span of the nodes.

        Returns:
            The smoothed density at ``grid``, shape ``(g,)``.

        Raises:
            ValueError: if ``sigma`` is not positive.
        """
        if sigma is None:
            span = (self.nodes.max() - self.nodes.min()).item()
            sigma = 0.01 * span if span > 0 else 1.0
        checks.number("sigma", sigma, 0, low_open=True)
        grid = grid.to(self.nodes)
        z = (grid[:, None] - self.nodes[None, :]) / sigma  # (g, m)
        kernel = torch.exp(-0.5 * z**2) / (sigma * math.sqrt(2 * math.pi))
        return kernel @ self.weights


def spectral_density(
    loss: Callable[[], Tensor],
    params: Sequence[Tensor],
    num_probes: int = 10,
    num_steps: int = 60,
    *,
    seed: int = 0,
) -> SpectralDensity:
    r"""The Hessian's eigenvalue density by stochastic Lanczos quadrature.

    For a unit probe :math:`v`, :math:`v^\top f(H) v = \sum_j f(\lambda_j)(u_j^\top v)^2`
    is a quadrature against the spectrum. ``num_steps`` steps of Lanczos from :math:`v`
    give a tridiagonal :math:`T = S \Theta S^\top` whose Gaussian quadrature has nodes
    :math:`\theta_i` and weights :math:`s_{1,i}^2`. Averaging over random probes
    (:math:`\mathbb{E}[(u_j^\top v)^2] = 1/n`):

    .. math::

        \phi(\lambda) = \frac{1}{n}\sum_{j=1}^n \delta(\lambda - \lambda_j) \approx
        \frac{1}{P} \sum_{p=1}^{P} \sum_{i=1}^{m} s^{(p)\,2}_{1,i}\,
        \delta(\lambda - \theta^{(p)}_i).

    Args:
        loss: zero-argument callable returning the scalar loss.
        params: the tensors the loss depends on (all with ``requires_grad=True``).
        num_probes: the number of random probe vectors :math:`P`.
        num_steps: Lanczos steps per probe :math:`m` (capped at ``n``).
        seed: seed of the probes.

    Returns:
        A :class:`SpectralDensity` with ``num_probes * m`` nodes and weights summing to one;
        ``.smooth(grid)`` turns it into a curve.

    Raises:
        ValueError: for a non-scalar loss, parameters without grad, or non-positive
            ``num_probes`` or ``num_steps``.

    References:
        B. Ghorbani, S. Krishnan and Y. Xiao, "An investigation into neural net optimization
        via Hessian eigenvalue density", ICML 2019.
        L. Lin, Y. Saad and C. Yang, "Approximating spectral densities of large matrices",
        SIAM Review, 2016.
    """
    checks.integer("num_probes", num_probes, 1)
    checks.integer("num_steps", num_steps, 1)
    op = HVPOperator(loss, params)
    gen = checks.generator(seed)
    steps = min(num_steps, op.dim)
    nodes, weights = [], []
    for _ in range(num_probes):
        v = _random_vector(op.dim, op.dtype, op.device, gen, rademacher=True)
        *_, krylov = _lanczos_steps(op, v, steps, gen)  # run all steps, keep the last state
        theta, s = krylov.ritz()
        nodes.append(theta)
        # Gauss quadrature weights: squared first components of T's eigenvectors
        weights.append(s[0] ** 2 / num_probes)
    return SpectralDensity(
        torch.cat(nodes).to(dtype=op.dtype, device=op.device),
        torch.cat(weights).to(dtype=op.dtype, device=op.device),
    )


# --------------------------------------------------------------------------------------
# Critical points
# --------------------------------------------------------------------------------------


class Classification(NamedTuple):
    """What kind of critical point a Hessian spectrum describes."""

    kind: str
    minimum_ratio: float


#: Default of ``classify`` and ``escape_direction``: an eigenvalue counts as zero below this
#: fraction of the largest magnitude in the spectrum.
RELATIVE_TOL = 1e-6


def classify(eigenvalues: Tensor | Sequence[float], tol: float | None = None) -> Classification:
    r"""Classify a critical point from its Hessian eigenvalues (the second-order test).

    At a point where :math:`\nabla L = 0`, :math:`L(\theta + \delta) \approx L(\theta) +
    \tfrac12 \delta^\top H \delta`, so with eigenvalues counted as zero when
    :math:`\lvert\lambda\rvert \le \mathrm{tol}`:

    - all :math:`\lambda_i > 0`: ``"local minimum"``;
    - all :math:`\lambda_i < 0`: ``"local maximum"``;
    - some positive and some negative: ``"saddle point"`` (whatever zeros there are);
    - otherwise (zeros, and no sign change): ``"degenerate"``, the second-order test
      cannot decide.

    The minimum ratio is the fraction of positive eigenvalues,

    .. math::

        \text{minimum ratio} = \frac{\#\{i : \lambda_i > \mathrm{tol}\}}{n}.

    Args:
        eigenvalues: all ``n`` eigenvalues of the Hessian.
        tol: magnitude below which an eigenvalue counts as zero, non-negative; default
            ``RELATIVE_TOL`` (1e-6) times the largest :math:`\lvert\lambda_i\rvert`, so the
            verdict does not change when the loss is multiplied by a constant.

    Returns:
        ``Classification(kind, minimum_ratio)``.

    Raises:
        ValueError: if ``eigenvalues`` is empty or not finite, or ``tol`` is negative.
    """
    values = torch.as_tensor(eigenvalues).detach().reshape(-1)
    if values.numel() == 0:
        raise ValueError("eigenvalues must not be empty")
    if not torch.isfinite(values).all():
        raise ValueError("eigenvalues must be finite")
    if tol is None:
        tol = RELATIVE_TOL * values.abs().max().item()
    checks.number("tol", tol, 0)
    positive = int((values > tol).sum())
    negative = int((values < -tol).sum())
    n = values.numel()
    if positive == n:
        kind = "local minimum"
    elif negative == n:
        kind = "local maximum"
    elif positive > 0 and negative > 0:
        kind = "saddle point"
    else:
        kind = "degenerate"
    return Classification(kind, positive / n)


def escape_direction(
    loss: Callable[[], Tensor], params: Sequence[Tensor], *, tol: float | None = None, seed: int = 0
) -> tuple[float, Tensor]:
    r"""A direction that lowers the loss at a saddle: the eigenvector of the most negative eigenvalue.

    At a critical point, moving by :math:`\eta u` along a unit eigenvector with
    :math:`Hu = \lambda u` changes the loss by

    .. math::

        L(\theta + \eta u) - L(\theta) \approx \tfrac12 \eta^2 \lambda < 0
        \quad \text{when } \lambda < 0,

    in either direction :math:`\pm u`.

    Args:
        loss: zero-argument callable returning the scalar loss.
        params: the tensors the loss depends on (all with ``requires_grad=True``).
        tol: the most negative eigenvalue must be below ``-tol``; default ``RELATIVE_TOL``
            times the largest :math:`\lvert\lambda\rvert` (then the largest eigenvalue is
            computed too, only when the smallest is negative).
        seed: seed of the Lanczos start vector.

    Returns:
        ``(eigenvalue, direction)``: the most negative eigenvalue and its flat unit
        eigenvector (use :func:`unflatten` to shape it like ``params``).

    Raises:
        ValueError: if the Hessian has no eigenvalue below ``-tol`` (no direction of
            negative curvature), or for bad ``loss``/``params``.
    """
    values, vectors = eigsh(loss, params, k=1, which="SA", seed=seed)
    eigenvalue = values[0].item()
    if tol is None and eigenvalue < 0:
        largest = eigsh(loss, params, k=1, which="LA", seed=seed)[0][0].item()
        tol = RELATIVE_TOL * max(-eigenvalue, largest)
    elif tol is None:
        tol = 0.0
    if not eigenvalue < -tol:
        raise ValueError(
            f"no direction of negative curvature: smallest eigenvalue {eigenvalue:.3g} >= -tol={-tol:.3g}"
        )
    return eigenvalue, vectors[:, 0]
