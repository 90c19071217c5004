"""Parity of every ``lib.optim`` optimizer with ``torch.optim.X``, in both of its paths.

``lib.optim.X(foreach=False)`` runs beside ``torch.optim.X(foreach=False)`` and
``lib.optim.X(foreach=True)`` beside ``torch.optim.X(foreach=True)``, on copies of the same
parameters, fed the same gradients, for 120 steps; parameters and every state tensor must
agree. On CPU each pair is bit-identical (tolerance 0) in float64 and float32 alike,
because ``lib`` issues the same ops in the same order; on CUDA the float32 runs use
torch's default float32 tolerance (rtol 1.3e-6, atol 1e-5) in case kernels differ.
"""

from __future__ import annotations

import copy

import pytest
import torch

import lib.optim as lo

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.cuda)]
STEPS = 120

# (class name, keyword settings): defaults, then non-default settings of every keyword
SETTINGS = [
    ("SGD", dict(lr=0.05)),
    ("SGD", dict(lr=0.02, momentum=0.9)),
    ("SGD", dict(lr=0.02, momentum=0.9, dampening=0.5, weight_decay=0.1)),
    ("SGD", dict(lr=0.02, momentum=0.9, nesterov=True)),
    ("SGD", dict(lr=0.02, momentum=0.5, maximize=True)),
    ("Adagrad", dict()),
    ("Adagrad", dict(lr=0.1, lr_decay=0.01, weight_decay=0.1, initial_accumulator_value=0.5, eps=1e-6)),
    ("Adagrad", dict(maximize=True)),
    ("RMSprop", dict()),
    ("RMSprop", dict(momentum=0.9)),
    ("RMSprop", dict(centered=True)),
    ("RMSprop", dict(lr=0.005, alpha=0.9, eps=1e-6, weight_decay=0.1, momentum=0.5, centered=True)),
    ("RMSprop", dict(maximize=True)),
    ("Adadelta", dict()),
    ("Adadelta", dict(lr=0.5, rho=0.5, eps=1e-4, weight_decay=0.1)),
    ("Adadelta", dict(maximize=True)),
    ("Adam", dict()),
    ("Adam", dict(lr=0.01, amsgrad=True)),
    ("Adam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("Adam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("Adam", dict(maximize=True)),
    ("AdamW", dict()),
    ("AdamW", dict(lr=0.01, weight_decay=0.3, amsgrad=True, maximize=True)),
    ("RAdam", dict()),
    ("RAdam", dict(lr=0.01, betas=(0.8, 0.99), eps=1e-6, weight_decay=0.1)),
    ("RAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("RAdam", dict(maximize=True)),
    ("NAdam", dict()),
    ("NAdam", dict(lr=0.01, betas=(0.8, 0.99), momentum_decay=1e-2, weight_decay=0.1)),
    ("NAdam", dict(lr=0.01, weight_decay=0.1, decoupled_weight_decay=True)),
    ("NAdam", dict(maximize=True)),
]


def make_params(dtype: torch.dtype, device: str) -> list[torch.Tensor]:
    """Four parameters: a matrix, a vector, a frozen one and a non-contiguous one."""
    gen = torch.Generator().manual_seed(0)
    weight = torch.randn(5, 3, generator=gen, dtype=dtype)
    bias = torch.randn(5, generator=gen, dtype=dtype)
    frozen = torch.randn(4, generator=gen, dtype=dtype)
    strided = torch.randn(6, 4, generator=gen, dtype=dtype).t()  # (4, 6), not contiguous
    params = [t.to(device).requires_grad_() for t in (weight, bias, strided)]
    params.insert(2, frozen.to(device))  # requires_grad=False: never gets a gradient
    assert not params[3].is_contiguous()
    return params


def groups(params: list[torch.Tensor], kwargs: dict) -> list[dict]:
    """Two groups with different settings: the second has half the lr (and other decay)."""
    second = dict(params=params[2:], lr=kwargs.get("lr", 0.01) / 2)
    if "weight_decay" in kwargs:
        second["weight_decay"] = kwargs["weight_decay"] * 2
    return [dict(params=params[:2]), second]


def set_grads(params: list[torch.Tensor], step: int, gen: torch.Generator) -> None:
    """Gradient of a noisy quadratic, g = h * theta + noise; the bias gets none every 3rd step."""
    for i, p in enumerate(params):
        noise = torch.randn(p.shape, generator=gen, dtype=p.dtype).to(p.device)
        if not p.requires_grad:
            continue
        p.grad = None if (i == 1 and step % 3 == 0) else (1.0 + i) * p.detach() + noise


def run_pair(
    name: str, kwargs: dict, dtype: torch.dtype, device: str, steps: int = STEPS, foreach: bool = False
):
    """Run lib and torch side by side, both with ``foreach``; return both parameter lists and optimizers."""
    ours, ref = make_params(dtype, device), make_params(dtype, device)
    opt = getattr(lo, name)(groups(ours, kwargs), foreach=foreach, **kwargs)
    opt_ref = getattr(torch.optim, name)(groups(ref, kwargs), foreach=foreach, **kwargs)
    gen, gen_ref = torch.Generator().manual_seed(1), torch.Generator().manual_seed(1)
    for t in range(steps):
        set_grads(ours, t, gen)
        set_grads(ref, t, gen_ref)
        opt.step()
        opt_ref.step()
    return ours, ref, opt, opt_ref


def assert_same_state(opt, opt_ref, ours, ref, **tol) -> None:
    """Same state keys per parameter, and the same values (dtype included)."""
    for p, q in zip(ours, ref, strict=True):
        state, state_ref = opt.state.get(p, {}), opt_ref.state.get(q, {})
        assert sorted(state) == sorted(state_ref)
        for key in state_ref:
            torch.testing.assert_close(state[key], state_ref[key], **tol)


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize(("name", "kwargs"), SETTINGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(SETTINGS)])
def test_parity_with_torch(name, kwargs, dtype, device, foreach):
    exact = device == "cpu" or dtype == torch.float64
    tol = dict(rtol=0, atol=0) if exact else dict(rtol=1.3e-6, atol=1e-5)
    ours, ref, opt, opt_ref = run_pair(name, kwargs, dtype, device, foreach=foreach)
    for p, q in zip(ours, ref, strict=True):
        torch.testing.assert_close(p, q, **tol)
    assert_same_state(opt, opt_ref, ours, ref, **tol)
    # the parameters moved, the frozen one did not, and the strided one kept its strides
    initial = make_params(dtype, device)
    assert not torch.equal(ours[0], initial[0])
    assert torch.equal(ours[2], initial[2])
    assert ours[3].stride() == initial[3].stride()


BAD = [
    ("SGD", dict(lr=-0.1), "lr"),
    ("SGD", dict(momentum=-0.5), "momentum"),
    ("SGD", dict(dampening=1.5), "dampening"),
    ("SGD", dict(weight_decay=-1e-4), "weight_decay"),
    ("SGD", dict(nesterov=True), "nesterov"),
    ("SGD", dict(nesterov=True, momentum=0.9, dampening=0.1), "nesterov"),
    ("Adagrad", dict(lr=-1.0), "lr"),
    ("Adagrad", dict(lr_decay=-1.0), "lr_decay"),
    ("Adagrad", dict(weight_decay=-1.0), "weight_decay"),
    ("Adagrad", dict(initial_accumulator_value=-1.0), "initial_accumulator_value"),
    ("Adagrad", dict(eps=-1e-10), "eps"),
    ("RMSprop", dict(lr=-1.0), "lr"),
    ("RMSprop", dict(alpha=1.5), "alpha"),
    ("RMSprop", dict(eps=-1.0), "eps"),
    ("RMSprop", dict(weight_decay=-1.0), "weight_decay"),
    ("RMSprop", dict(momentum=-1.0), "momentum"),
    ("Adadelta", dict(lr=-1.0), "lr"),
    ("Adadelta", dict(rho=1.1), "rho"),
    ("Adadelta", dict(rho=-0.1), "rho"),
    ("Adadelta", dict(eps=-1.0), "eps"),
    ("Adadelta", dict(weight_decay=-1.0), "weight_decay"),
    ("Adam", dict(lr=-1.0), "lr"),
    ("Adam", dict(betas=(1.0, 0.999)), r"betas\[0\]"),
    ("Adam", dict(betas=(0.9, -0.1)), r"betas\[1\]"),
    ("Adam", dict(eps=-1.0), "eps"),
    ("Adam", dict(weight_decay=-1.0), "weight_decay"),
    ("AdamW", dict(betas=(0.9, 1.0)), r"betas\[1\]"),
    ("AdamW", dict(weight_decay=-1.0), "weight_decay"),
    ("RAdam", dict(lr=-1.0), "lr"),
    ("RAdam", dict(betas=(-0.1, 0.999)), r"betas\[0\]"),
    ("RAdam", dict(eps=-1.0), "eps"),
    ("RAdam", dict(weight_decay=-1.0), "weight_decay"),
    ("NAdam", dict(lr=-1.0), "lr"),
    ("NAdam", dict(betas=(0.9, 1.5)), r"betas\[1\]"),
    ("NAdam", dict(momentum_decay=-1.0), "momentum_decay"),
    ("NAdam", dict(weight_decay=-1.0), "weight_decay"),
    ("SWATS", dict(switch_tol=-1.0), "switch_tol"),
    ("SWATS", dict(betas=(1.0, 0.9)), r"betas\[0\]"),
]


@pytest.mark.parametrize(("name", "kwargs", "argument"), BAD, ids=[f"{n}-{a}" for n, _, a in BAD])
def test_invalid_hyperparameter_raises(name, kwargs, argument):
    param = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=rf"^{argument}.* must .*, got "):
        getattr(lo, name)([param], **kwargs)


@pytest.mark.parametrize(("k", "alpha", "argument"), [(0, 0.5, "k"), (2.5, 0.5, "k"), (5, 1.5, "alpha")])
def test_lookahead_invalid_hyperparameter_raises(k, alpha, argument):
    param = torch.zeros(2, requires_grad=True)
    with pytest.raises(ValueError, match=rf"^{argument} must be .*, got "):
        lo.Lookahead(lo.SGD([param], lr=0.1), k=k, alpha=alpha)


def all_optimizers(params: list[torch.Tensor]) -> dict[str, torch.optim.Optimizer]:
    """One of each lib optimizer, with non-default settings where they add state."""
    return {
        "SGD": lo.SGD(params, lr=0.01, momentum=0.9),
        "Adagrad": lo.Adagrad(params, lr_decay=0.01),
        "RMSprop": lo.RMSprop(params, momentum=0.5, centered=True),
        "Adadelta": lo.Adadelta(params),
        "Adam": lo.Adam(params, amsgrad=True),
        "AdamW": lo.AdamW(params),
        "RAdam": lo.RAdam(params),
        "NAdam": lo.NAdam(params),
        "Lookahead": lo.Lookahead(lo.Adam(params, lr=0.01), k=3),
        "SWATS": lo.SWATS(params, lr=0.01, switch_tol=1e-3),
    }


NAMES = list(all_optimizers([torch.zeros(1, requires_grad=True)]))


@pytest.mark.parametrize("name", NAMES)
def test_state_dict_round_trip_continues_exactly(name):
    def loss_of(params):
        return sum(((i + 1) * p**2).sum() + p.sum() for i, p in enumerate(params))

    def train(opt, params, steps):
        for _ in range(steps):
            opt.zero_grad()
            loss_of(params).backward()
            opt.step()

    params = [
        t.detach().clone().requires_grad_() for t in make_params(torch.float64, "cpu") if t.requires_grad
    ]
    opt = all_optimizers(params)[name]
    train(opt, params, 25)
    saved = copy.deepcopy(opt.state_dict())
    restored_params = [p.detach().clone().requires_grad_() for p in params]
    restored = all_optimizers(restored_params)[name]
    restored.load_state_dict(saved)
    train(opt, params, 25)
    train(restored, restored_params, 25)
    for p, q in zip(params, restored_params, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)
    assert restored.state_dict()["param_groups"] == opt.state_dict()["param_groups"]


@pytest.mark.parametrize("foreach", [False, True], ids=["loop", "foreach"])
@pytest.mark.parametrize(
    ("name", "kwargs"), SETTINGS[::3], ids=[f"{n}-{i}" for i, (n, _) in enumerate(SETTINGS)][::3]
)
def test_state_dict_cross_loads_between_lib_and_torch(name, kwargs, foreach):
    # lib's state dict continues in torch and torch's in lib, bit for bit: same names, same values
    def continued(first, second):
        params = make_params(torch.float64, "cpu")
        opt = first(groups(params, kwargs), foreach=foreach, **kwargs)
        gen = torch.Generator().manual_seed(1)
        for t in range(10):
            set_grads(params, t, gen)
            opt.step()
        other = second(groups(params, kwargs), foreach=foreach, **kwargs)
        other.load_state_dict(copy.deepcopy(opt.state_dict()))
        for t in range(10, 20):
            set_grads(params, t, gen)
            other.step()
        return params

    ours, theirs = getattr(lo, name), getattr(torch.optim, name)
    expected = continued(theirs, theirs)
    for first, second in ((ours, theirs), (theirs, ours)):
        for p, q in zip(continued(first, second), expected, strict=True):
            torch.testing.assert_close(p, q, rtol=0, atol=0)


@pytest.mark.parametrize("name", NAMES)
def test_step_with_closure_returns_loss_and_repr_prints(name):
    x = torch.tensor([1.0, -2.0], requires_grad=True)
    opt = all_optimizers([x])[name]

    def closure():
        opt.zero_grad()
        loss = (x**2).sum()
        loss.backward()
        return loss

    loss = opt.step(closure)
    assert loss.item() == pytest.approx(5.0)
    assert not torch.equal(x.detach(), torch.tensor([1.0, -2.0]))  # the closure's gradient was used
    text = repr(opt)
    assert text.startswith("Lookahead(" if name == "Lookahead" else f"{name} (")
    assert f"lr: {opt.param_groups[0]['lr']}" in text


def quadratic(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Ill-conditioned quadratic 0.5 * (x0^2 + 10 x1^2) and its gradient; minimum 0 at 0."""
    return 0.5 * (x[0] ** 2 + 10 * x[1] ** 2), torch.stack([x[0], 10 * x[1]])


def rosenbrock(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Rosenbrock's banana (1 - x0)^2 + 100 (x1 - x0^2)^2 and its gradient; minimum 0 at (1, 1)."""
    a, b = x[0], x[1]
    loss = (1 - a) ** 2 + 100 * (b - a * a) ** 2
    return loss, torch.stack([-2 * (1 - a) - 400 * a * (b - a * a), 200 * (b - a * a)])


# (name, builder, final loss on the quadratic, final loss on Rosenbrock) after 1500 steps.
# Starts: quadratic at (1, 1) (loss 5.5), Rosenbrock at (-1, 1) (loss 4), round the banana.
# AdaGrad's step keeps shrinking and Adadelta's grows slowly from sqrt(eps): looser bounds.
CONVERGENCE = [
    ("SGD-momentum", lambda p: lo.SGD(p, lr=2e-3, momentum=0.9), 1e-12, 1e-8),
    ("SGD-nesterov", lambda p: lo.SGD(p, lr=1e-3, momentum=0.9, nesterov=True), 1e-12, 1e-5),
    ("Adagrad", lambda p: lo.Adagrad(p, lr=1.0), 1e-12, 0.2),
    ("RMSprop", lambda p: lo.RMSprop(p, lr=1e-3, momentum=0.9), 1e-12, 1e-4),
    ("Adadelta", lambda p: lo.Adadelta(p, lr=0.5), 1e-3, 0.5),
    ("Adam", lambda p: lo.Adam(p, lr=0.01, betas=(0.9, 0.99)), 1e-12, 1e-4),
    ("AdamW", lambda p: lo.AdamW(p, lr=0.01, betas=(0.9, 0.99), weight_decay=0.0), 1e-12, 1e-4),
    ("RAdam", lambda p: lo.RAdam(p, lr=0.01, betas=(0.9, 0.99)), 1e-12, 1e-6),
    ("NAdam", lambda p: lo.NAdam(p, lr=0.01, betas=(0.9, 0.99)), 1e-12, 1e-2),
    ("Lookahead", lambda p: lo.Lookahead(lo.Adam(p, lr=0.05)), 1e-12, 1e-4),
    ("SWATS", lambda p: lo.SWATS(p, lr=0.02), 1e-12, 1e-2),
]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize(
    ("name", "build", "tol_quadratic", "tol_rosenbrock"), CONVERGENCE, ids=[c[0] for c in CONVERGENCE]
)
def test_convergence(name, build, tol_quadratic, tol_rosenbrock, device):
    for problem, start, tol in [
        (quadratic, (1.0, 1.0), tol_quadratic),
        (rosenbrock, (-1.0, 1.0), tol_rosenbrock),
    ]:
        x = torch.tensor(start, dtype=torch.float64, device=device, requires_grad=True)
        opt = build([x])
        initial, _ = problem(x.detach())
        for _ in range(1500):
            x.grad = problem(x.detach())[1]
            opt.step()
        final, _ = problem(x.detach())
        assert final.item() < tol < initial.item(), f"{name} on {problem.__name__}: loss {final.item():.3g}"


def test_lookahead_state_dict_after_add_param_group():
    def build(first: torch.Tensor, second: torch.Tensor) -> lo.Lookahead:
        opt = lo.Lookahead(lo.Adam([first], lr=0.01), k=3)
        opt.add_param_group({"params": [second], "lr": 0.05, "alpha": 0.8})
        return opt

    def train(opt: lo.Lookahead, params: list[torch.Tensor], steps: int) -> None:
        for _ in range(steps):
            opt.zero_grad()
            sum(((i + 1) * p**2).sum() for i, p in enumerate(params)).backward()
            opt.step()

    params = [torch.ones(3, dtype=torch.float64, requires_grad=True) for _ in range(2)]
    opt = build(*params)
    train(opt, params, 4)  # mid-way between two synchronisations
    saved = copy.deepcopy(opt.state_dict())
    copies = [p.detach().clone().requires_grad_() for p in params]
    restored = build(*copies)
    restored.load_state_dict(saved)
    assert restored.param_groups[1]["alpha"] == 0.8 and restored.param_groups[1]["lr"] == 0.05
    train(opt, params, 5)
    train(restored, copies, 5)
    for p, q in zip(params, copies, strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=0)


def test_swats_counts_only_steps_with_gradients():
    x, y = (torch.ones(2, dtype=torch.float64, requires_grad=True) for _ in range(2))
    opt = lo.SWATS([{"params": [x]}, {"params": [y]}], lr=0.01)
    for t in range(6):
        opt.zero_grad(set_to_none=True)
        loss = (x**2).sum() + ((y**2).sum() if t % 2 == 0 else 0.0)
        loss.backward()
        opt.step()
    for group, p in zip(opt.param_groups, (x, y), strict=True):
        assert group["step"] == opt.state[p]["step"].item()
    assert opt.param_groups[1]["step"] == 3


@pytest.mark.cuda
@pytest.mark.parametrize("name", NAMES)
def test_state_dict_saved_on_cpu_loads_onto_cuda(name):
    def train(opt, params, steps):
        for _ in range(steps):
            opt.zero_grad()
            sum(((i + 1) * p**2).sum() + p.sum() for i, p in enumerate(params)).backward()
            opt.step()

    params = [torch.ones(4, dtype=torch.float64, requires_grad=True)]
    opt = all_optimizers(params)[name]
    train(opt, params, 10)
    on_cuda = [p.detach().cuda().requires_grad_() for p in params]
    restored = all_optimizers(on_cuda)[name]
    restored.load_state_dict(copy.deepcopy(opt.state_dict()))
    train(opt, params, 10)
    train(restored, on_cuda, 10)
    torch.testing.assert_close(on_cuda[0].cpu(), params[0], rtol=1e-12, atol=1e-12)
