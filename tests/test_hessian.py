"""Tests for lib.hessian: every estimate against torch's dense reference."""

import pytest
import torch
from torch.func import functional_call

from lib import hessian as H

DTYPES = [torch.float32, torch.float64]
# tolerances per dtype for comparisons against dense references
TOL = {torch.float32: {"rtol": 1e-4, "atol": 1e-4}, torch.float64: {"rtol": 1e-10, "atol": 1e-10}}


def small_network(dtype, device="cpu", seed=0):
    """A 3-4-2 tanh network with MSE on 8 points: 26 parameters, an honest non-convex loss."""
    gen = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Tanh(), torch.nn.Linear(4, 2))
    model = model.to(dtype=dtype, device=device)
    x = torch.randn(8, 3, generator=gen, dtype=dtype).to(device)
    y = torch.randn(8, 2, generator=gen, dtype=dtype).to(device)
    params = list(model.parameters())

    def loss():
        return torch.nn.functional.mse_loss(model(x), y)

    names = [n for n, _ in model.named_parameters()]

    def loss_of_flat(flat):
        tensors = H.unflatten(flat, params)
        return torch.nn.functional.mse_loss(
            functional_call(model, dict(zip(names, tensors, strict=True)), (x,)), y
        )

    return loss, params, loss_of_flat


def quadratic(eigenvalues, dtype=torch.float64, seed=0):
    """L(x) = 1/2 x^T A x with A = Q diag(eigenvalues) Q^T for a random orthogonal Q."""
    n = len(eigenvalues)
    gen = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=dtype))
    a = q @ torch.diag(torch.tensor(eigenvalues, dtype=dtype)) @ q.T
    x = torch.randn(n, generator=gen, dtype=dtype).requires_grad_()
    return (lambda: 0.5 * x @ a @ x), [x], a


def saddle_of_the_notes():
    """y = w1 * w2 * x fit to (x, y) = (1, 1) with loss (y - w1 w2 x)^2, at the origin."""
    w = torch.zeros(2, dtype=torch.float64, requires_grad=True)
    return (lambda: (1.0 - w[0] * w[1] * 1.0) ** 2), [w]


@pytest.mark.parametrize("dtype", DTYPES)
def test_hvp_matches_dense_hessian_and_torch_func(dtype):
    loss, params, loss_of_flat = small_network(dtype)
    flat = H.flatten([p.detach() for p in params])
    reference = torch.func.hessian(loss_of_flat)(flat)
    v = torch.randn(flat.numel(), generator=torch.Generator().manual_seed(1), dtype=dtype)
    torch.testing.assert_close(H.hvp(loss, params, v), reference @ v, **TOL[dtype])
    torch.testing.assert_close(H.hessian(loss, params), reference, **TOL[dtype])
    # the list form gives the same product, shaped like params
    as_list = H.hvp(loss, params, H.unflatten(v, params))
    assert [t.shape for t in as_list] == [p.shape for p in params]
    torch.testing.assert_close(H.flatten(as_list), reference @ v, **TOL[dtype])


def test_hvp_matches_autograd_functional_hvp():
    loss, params, loss_of_flat = small_network(torch.float64)
    flat = H.flatten([p.detach() for p in params])
    v = torch.randn(flat.numel(), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    _, reference = torch.autograd.functional.hvp(loss_of_flat, flat, v)
    torch.testing.assert_close(H.hvp(loss, params, v), reference, rtol=1e-10, atol=1e-10)


def test_operator_reuses_graph_and_counts_products():
    loss, params, _ = small_network(torch.float64)
    op = H.HVPOperator(loss, params)
    dense = H.hessian(loss, params)
    gen = torch.Generator().manual_seed(3)
    for _ in range(3):  # several products from one gradient graph
        v = torch.randn(op.dim, generator=gen, dtype=torch.float64)
        torch.testing.assert_close(op(v), dense @ v, rtol=1e-10, atol=1e-10)
    assert op.num_products == 3


def test_parameter_unused_by_loss_has_zero_curvature():
    a = torch.tensor([1.0, 2.0], dtype=torch.float64, requires_grad=True)
    unused = torch.ones(3, dtype=torch.float64, requires_grad=True)
    dense = H.hessian(lambda: (a**3).sum(), [a, unused])
    expected = torch.zeros(5, 5, dtype=torch.float64)
    expected[0, 0], expected[1, 1] = 6.0, 12.0  # d2/da2 a^3 = 6a
    torch.testing.assert_close(dense, expected)


@pytest.mark.parametrize("which", ["LA", "SA", "LM"])
def test_eigsh_matches_eigh_on_small_network(which):
    loss, params, _ = small_network(torch.float64)
    reference = torch.linalg.eigh(H.hessian(loss, params))
    values, vectors = H.eigsh(loss, params, k=4, which=which)
    order = {
        "LA": torch.argsort(reference.eigenvalues, descending=True),
        "SA": torch.argsort(reference.eigenvalues),
        "LM": torch.argsort(reference.eigenvalues.abs(), descending=True),
    }[which][:4]
    torch.testing.assert_close(values, reference.eigenvalues[order], rtol=1e-5, atol=1e-12)
    # eigenvectors agree up to sign: |<u, u_ref>| = 1
    overlaps = (vectors * reference.eigenvectors[:, order]).sum(dim=0).abs()
    torch.testing.assert_close(overlaps, torch.ones(4, dtype=torch.float64), rtol=0, atol=1e-5)


def test_eigsh_finds_known_spectrum_of_quadratic():
    spectrum = [10.0, 9.0, 5.0, 1.0, 0.5, 0.0, -0.5, -3.0] + [0.1] * 32
    loss, params, _ = quadratic(spectrum)
    top, _ = H.eigsh(loss, params, k=3, which="LA")
    bottom, _ = H.eigsh(loss, params, k=2, which="SA")
    largest, _ = H.eigsh(loss, params, k=2, which="LM")
    kw = {"rtol": 1e-8, "atol": 1e-8}
    torch.testing.assert_close(top, torch.tensor([10.0, 9.0, 5.0], dtype=torch.float64), **kw)
    torch.testing.assert_close(bottom, torch.tensor([-3.0, -0.5], dtype=torch.float64), **kw)
    torch.testing.assert_close(largest, torch.tensor([10.0, 9.0], dtype=torch.float64), **kw)


def test_eigsh_full_spectrum_with_repeated_eigenvalues():
    # k = n forces Lanczos through invariant subspaces (breakdown and restart)
    spectrum = [3.0, 3.0, 3.0, 1.0, 1.0, -2.0]
    loss, params, _ = quadratic(spectrum)
    values, vectors = H.eigsh(loss, params, k=6)
    torch.testing.assert_close(values, torch.tensor(sorted(spectrum, reverse=True), dtype=torch.float64))
    torch.testing.assert_close(vectors.T @ vectors, torch.eye(6, dtype=torch.float64), atol=1e-10, rtol=0)


def test_lanczos_uses_fewer_products_than_power_iteration():
    # top two eigenvalues close together: power iteration is slow, Lanczos is not
    spectrum = [1.0, 0.95] + torch.linspace(0.0, 0.9, 198).tolist()
    loss, params, _ = quadratic(spectrum)
    op = H.HVPOperator(loss, params)
    v0 = torch.randn(op.dim, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    value, _ = H.lanczos(op, v0, k=1, tol=1e-6)
    lanczos_products = op.num_products
    estimate, _ = H.power_method(op, v0, tol=1e-10, max_iter=5000)
    power_products = op.num_products - lanczos_products
    assert abs(value.item() - 1.0) < 1e-8
    assert abs(estimate - 1.0) < 1e-4
    assert 3 * lanczos_products < power_products, (lanczos_products, power_products)


def test_power_iteration_converges_to_top_eigenvalue():
    loss, params, a = quadratic([4.0, 1.0, 0.5, -1.0])
    value, vector = H.power_iteration(loss, params, tol=1e-12)
    assert abs(value - 4.0) < 1e-8
    torch.testing.assert_close(a @ vector, 4.0 * vector, atol=1e-5, rtol=0)


def test_worked_saddle_of_the_notes():
    loss, params = saddle_of_the_notes()
    torch.testing.assert_close(
        H.hessian(loss, params), torch.tensor([[0.0, -2.0], [-2.0, 0.0]], dtype=torch.float64)
    )
    values, _ = H.eigsh(loss, params, k=2)
    torch.testing.assert_close(values, torch.tensor([2.0, -2.0], dtype=torch.float64))
    kind, ratio = H.classify(values)
    assert kind == "saddle point" and ratio == 0.5
    eigenvalue, direction = H.escape_direction(loss, params)
    assert abs(eigenvalue + 2.0) < 1e-10
    # the escape direction is +-(1, 1)/sqrt(2), and stepping along it lowers the loss
    torch.testing.assert_close(direction.abs(), torch.full((2,), 2**-0.5, dtype=torch.float64))
    w = params[0]
    before = loss().item()
    with torch.no_grad():
        w += 0.1 * direction
    assert loss().item() < before


def test_escape_direction_refuses_a_minimum():
    loss, params, _ = quadratic([2.0, 1.0])
    with pytest.raises(ValueError, match="no direction of negative curvature"):
        H.escape_direction(loss, params)


@pytest.mark.parametrize(
    ("values", "kind", "ratio"),
    [
        ([1.0, 2.0, 3.0], "local minimum", 1.0),
        ([-1.0, -2.0], "local maximum", 0.0),
        ([2.0, -2.0, 1.0, 5.0], "saddle point", 0.75),
        ([1.0, 0.0, -1.0], "saddle point", 1 / 3),
        ([1.0, 1e-9], "degenerate", 0.5),
        ([-1.0, 0.0], "degenerate", 0.0),
    ],
)
def test_classify(values, kind, ratio):
    assert H.classify(torch.tensor(values), tol=1e-6) == (kind, pytest.approx(ratio))


def test_hutchinson_within_three_standard_errors():
    loss, params, _ = small_network(torch.float64)
    exact = torch.trace(H.hessian(loss, params)).item()
    estimate, stderr = H.trace(loss, params, num_samples=200, seed=0)
    assert stderr > 0
    assert abs(estimate - exact) < 3 * stderr, (estimate, exact, stderr)
    # seeded: the same seed gives the same estimate
    assert H.trace(loss, params, num_samples=200, seed=0).estimate == estimate


def test_spectral_density_matches_exact_moments():
    spectrum = torch.linspace(-1.0, 4.0, 60).tolist()
    loss, params, a = quadratic(spectrum)
    density = H.spectral_density(loss, params, num_probes=20, num_steps=30, seed=0)
    assert density.nodes.shape == density.weights.shape == (20 * 30,)
    torch.testing.assert_close(density.weights.sum(), torch.tensor(1.0, dtype=torch.float64))
    # its mean and second moment estimate tr(A)/n and tr(A^2)/n (probe noise ~ 1/sqrt(n P))
    n = len(spectrum)
    mean = (density.weights * density.nodes).sum().item()
    second = (density.weights * density.nodes**2).sum().item()
    assert abs(mean - torch.trace(a).item() / n) < 0.1
    assert abs(second - torch.trace(a @ a).item() / n) < 0.3
    # nodes lie inside the spectrum; the extremes are resolved
    assert density.nodes.min() > -1.0 - 1e-6 and density.nodes.max() < 4.0 + 1e-6
    assert abs(density.nodes.max().item() - 4.0) < 1e-6
    grid = torch.linspace(-2.0, 5.0, 701, dtype=torch.float64)
    curve = density.smooth(grid, sigma=0.1)
    assert abs(torch.trapezoid(curve, grid).item() - 1.0) < 1e-3


def test_bad_input_errors():
    w = torch.zeros(3, requires_grad=True)
    with pytest.raises(ValueError, match="scalar"):
        H.hvp(lambda: w * 2, [w], torch.ones(3))
    frozen = torch.zeros(3)
    with pytest.raises(ValueError, match=r"params\[0\].*does not require grad"):
        H.hessian(lambda: (frozen**2).sum(), [frozen])
    with pytest.raises(ValueError, match="non-empty"):
        H.hessian(lambda: (w**2).sum(), [])
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 3\]"):
        H.eigsh(lambda: (w**2).sum(), [w], k=4)
    with pytest.raises(ValueError, match=r"k must be an integer in \[1, 3\]"):
        H.eigsh(lambda: (w**2).sum(), [w], k=0)
    with pytest.raises(ValueError, match="which must be one of"):
        H.eigsh(lambda: (w**2).sum(), [w], k=1, which="BE")
    with pytest.raises(ValueError, match=r"v must have shape \(3,\)"):
        H.hvp(lambda: (w**2).sum(), [w], torch.ones(4))
    with pytest.raises(ValueError, match="num_samples must be an integer >= 2"):
        H.trace(lambda: (w**2).sum(), [w], num_samples=1)
    with pytest.raises(ValueError, match="tol must be non-negative"):
        H.classify([1.0], tol=-1.0)
    with pytest.raises(ValueError, match="does not depend on params"):
        H.hessian(lambda: torch.tensor(1.0), [w])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("dtype", DTYPES)
def test_cuda_matches_cpu(dtype):
    loss_cpu, params_cpu, _ = small_network(dtype)
    loss_gpu, params_gpu, _ = small_network(dtype, device="cuda")
    dense_cpu = H.hessian(loss_cpu, params_cpu)
    dense_gpu = H.hessian(loss_gpu, params_gpu)
    assert dense_gpu.device.type == "cuda"
    torch.testing.assert_close(dense_gpu.cpu(), dense_cpu, **TOL[dtype])
    values, vectors = H.eigsh(loss_gpu, params_gpu, k=2)
    assert values.device.type == "cuda" and vectors.device.type == "cuda"
    torch.testing.assert_close(values.cpu(), torch.linalg.eigvalsh(dense_cpu).flip(0)[:2], **TOL[dtype])
    estimate, stderr = H.trace(loss_gpu, params_gpu, num_samples=50)
    assert abs(estimate - torch.trace(dense_cpu).item()) < 4 * stderr + 1e-4
