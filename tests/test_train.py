"""Tests for lib.train: fit's records, determinism, divergence, early stopping, modes."""

import dataclasses
import math

import pytest
import torch
from torch import nn

from lib.data import BatchLoader, TensorData, make_moons, make_noisy_function
from lib.models import mlp
from lib.train import DivergenceError, History, evaluate, fit


def _classification(n: int = 200, seed: int = 0) -> TensorData:
    return make_moons(n, noise=0.2, seed=seed)


def _model(dropout: bool = False, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    net = mlp(2, 16, 2, 2)
    return nn.Sequential(net[:-1], nn.Dropout(0.2), net[-1]) if dropout else net


def _fit(
    model: nn.Module, data: TensorData, *, lr: float = 0.1, optimizer=None, loss_fn=None, **kwargs
) -> History:
    """fit with the tests' usual settings: plain SGD at ``lr`` (unless given an ``optimizer``),
    cross-entropy, one epoch of batches of 32, no progress bar."""
    kwargs = {"epochs": 1, "batch_size": 32, "progress": False, **kwargs}
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=lr)
    return fit(model, optimizer, loss_fn or nn.CrossEntropyLoss(), data, **kwargs)


def _without_times(history: History) -> dict:
    record = dataclasses.asdict(history)
    del record["step_time"], record["epoch_time"]
    return record


def test_fit_matches_a_hand_written_torch_loop():
    data = _classification()
    model, reference = _model(), _model()
    fit(
        model,
        torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9),
        nn.CrossEntropyLoss(),
        data,
        epochs=3,
        batch_size=32,
        seed=5,
        progress=False,
    )
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    loader = BatchLoader(*data, batch_size=32, seed=5)
    for _ in range(3):
        for xb, yb in loader:
            loss = nn.functional.cross_entropy(reference(xb), yb)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p, q)


def test_history_records_every_step_and_epoch():
    data, val = _classification(), _classification(100, seed=1)
    model = _model()
    history = fit(
        model,
        torch.optim.Adam(model.parameters(), lr=1e-2),
        nn.CrossEntropyLoss(),
        data,
        val_data=val,
        epochs=4,
        batch_size=64,
        progress=False,
    )
    steps = 4 * math.ceil(200 / 64)
    for name in ("step_loss", "step_lr", "step_grad_norm", "step_time"):
        assert len(getattr(history, name)) == steps, name
    for name in ("epoch_train_loss", "epoch_val_loss", "epoch_train_acc", "epoch_val_acc", "epoch_time"):
        assert len(getattr(history, name)) == 4, name
    assert history.steps == steps and history.epochs == 4
    assert history.step_time == sorted(history.step_time) and history.epoch_time[-1] >= history.step_time[-1]
    assert all(0.0 <= a <= 1.0 for a in history.epoch_train_acc + history.epoch_val_acc)
    assert history.epoch_train_loss[-1] < history.epoch_train_loss[0]
    # the epoch's train loss is the size-weighted mean of its mini-batch losses (64, 64, 64, 8)
    first = history.step_loss[:4]
    assert history.epoch_train_loss[0] == pytest.approx((64 * sum(first[:3]) + 8 * first[3]) / 200)
    # the last validation figures are what evaluate() measures
    final = evaluate(model, nn.CrossEntropyLoss(), val)
    assert history.epoch_val_loss[-1] == pytest.approx(final.loss, rel=1e-5)
    assert history.epoch_val_acc[-1] == pytest.approx(final.accuracy)
    assert history.best_epoch == min(range(4), key=history.epoch_val_loss.__getitem__)


def test_gradient_norm_is_the_norm_of_all_gradients():
    data = make_noisy_function(16, seed=0)
    torch.manual_seed(0)
    model = mlp(1, 8, 1, 1)
    reference = mlp(1, 8, 1, 1)
    reference.load_state_dict(model.state_dict())
    history = _fit(model, data, loss_fn=nn.MSELoss(), epochs=1, batch_size=16, shuffle=False)
    nn.MSELoss()(reference(data.x), data.y).backward()
    expected = torch.cat([p.grad.flatten() for p in reference.parameters()]).norm()
    assert history.step_grad_norm[0] == pytest.approx(float(expected), rel=1e-5)


def test_regression_has_no_accuracy_and_eval_train_matches_evaluate():
    data = make_noisy_function(40, seed=0)
    torch.manual_seed(0)
    model = mlp(1, 16, 2, 1)
    history = fit(
        model,
        torch.optim.Adam(model.parameters(), lr=1e-2),
        nn.MSELoss(),
        data,
        epochs=3,
        batch_size=8,
        eval_train=True,
        progress=False,
    )
    assert history.epoch_train_acc == [] and history.epoch_val_acc == []
    assert history.epoch_train_loss[-1] == pytest.approx(evaluate(model, nn.MSELoss(), data).loss, rel=1e-5)
    assert evaluate(model, nn.MSELoss(), data).accuracy is None


def test_two_runs_give_identical_histories():
    data, val = _classification(), _classification(100, seed=1)

    def run(seed: int, val_data=None) -> History:
        model = _model(dropout=True)
        momentum = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        return _fit(model, data, optimizer=momentum, val_data=val_data, epochs=3, seed=seed)

    histories = [run(3, val), run(3, val)]
    assert _without_times(histories[0]) == _without_times(histories[1])
    other = run(4)
    assert other.step_loss != histories[0].step_loss


def test_fit_leaves_the_global_generator_alone():
    data, model = _classification(), _model(dropout=True)
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    _fit(model, data, epochs=1, batch_size=50)
    assert torch.equal(torch.rand(3), expected)


def test_schedule_sets_the_learning_rate_of_every_step():
    data = _classification()
    model = _model()
    optimizer = torch.optim.SGD(
        [{"params": model[:2].parameters()}, {"params": model[2:].parameters()}], lr=1.0
    )

    def schedule(step: int) -> float:
        return 0.1 / (1 + step)

    history = fit(
        model,
        optimizer,
        nn.CrossEntropyLoss(),
        data,
        epochs=2,
        batch_size=100,
        schedule=schedule,
        progress=False,
    )
    assert history.step_lr == [schedule(t) for t in range(4)]
    assert [group["lr"] for group in optimizer.param_groups] == [schedule(3)] * 2
    # a schedule of zero really freezes the weights
    frozen = _model()
    before = [p.clone() for p in frozen.parameters()]
    _fit(frozen, data, lr=1.0, epochs=1, batch_size=50, schedule=lambda step: 0.0)
    assert all(torch.equal(p, q) for p, q in zip(frozen.parameters(), before, strict=True))


def _exploding_run(**kwargs) -> tuple[nn.Module, dict]:
    """Gradient descent on L(w) = w^2 with lr 1.5: w_t = (-2)^t and L_t = 4^t.

    In float32, 4^64 = 2^128 overflows, so the loss of step 64 (from 0) is the first inf,
    and |w| first exceeds 1000 after the update of step 9 (|w_10| = 1024).
    """
    model = nn.Linear(1, 1, bias=False)
    nn.init.ones_(model.weight)
    data = TensorData(torch.ones(1, 1), torch.zeros(1, 1))
    args = {"epochs": 100, "batch_size": 1, "progress": False, **kwargs}
    return model, args | {"data": data}


def test_divergence_raises_with_the_step_and_learning_rate():
    model, args = _exploding_run(max_param_norm=None)
    data = args.pop("data")
    with pytest.raises(DivergenceError, match=r"step 64 .*learning rate 1\.5") as caught:
        _fit(model, data, lr=1.5, loss_fn=nn.MSELoss(), **args)
    assert caught.value.step == 64 and caught.value.lr == 1.5
    assert caught.value.history.step_loss[63] == pytest.approx(4.0**63)


def test_divergence_stop_sets_the_flags():
    model, args = _exploding_run(max_param_norm=None)
    data = args.pop("data")
    history = _fit(model, data, lr=1.5, loss_fn=nn.MSELoss(), on_divergence="stop", **args)
    assert history.diverged and history.diverged_step == 64
    assert len(history.step_loss) == len(history.step_lr) == len(history.step_grad_norm) == 65
    assert math.isinf(history.step_loss[-1]) and all(math.isfinite(v) for v in history.step_loss[:-1])
    assert history.epochs == 64  # epochs before the divergent one


def test_divergence_stop_restores_the_best_weights_of_early_stopping():
    # the validation loss (on the training point) is lowest after epoch 0, w_1 = -2
    model, args = _exploding_run(max_param_norm=None, early_stopping_patience=80)
    data = args.pop("data")
    history = _fit(model, data, lr=1.5, loss_fn=nn.MSELoss(), val_data=data, on_divergence="stop", **args)
    assert history.diverged and history.best_epoch == 0 and not history.stopped_early
    assert model.weight.item() == -2.0


def test_divergence_on_the_parameter_norm():
    model, args = _exploding_run(max_param_norm=1000.0, sync_every=1)
    data = args.pop("data")
    history = _fit(model, data, lr=1.5, loss_fn=nn.MSELoss(), on_divergence="stop", **args)
    assert history.diverged_step == 9
    healthy, _ = _exploding_run()
    history = _fit(healthy, _exploding_run()[1]["data"], loss_fn=nn.MSELoss(), epochs=100, batch_size=1)
    assert not history.diverged and history.diverged_step is None and history.step_loss[-1] < 1e-6


def test_early_stopping_restores_the_best_weights():
    # train towards w = 2, validate against w = 1: the validation loss falls, then rises
    x = torch.linspace(-1, 1, 32).unsqueeze(1)
    train, val = TensorData(x, 2 * x), TensorData(x, 1 * x)
    model = nn.Linear(1, 1, bias=False)
    nn.init.zeros_(model.weight)

    def remember(net: nn.Module, epoch: int, history: History) -> dict:
        return {"w": net.weight.item(), "training": net.training}

    history = _fit(
        model,
        train,
        lr=0.05,
        loss_fn=nn.MSELoss(),
        val_data=val,
        epochs=50,
        batch_size=32,
        early_stopping_patience=3,
        callback=remember,
    )
    best = history.best_epoch
    assert best == min(range(history.epochs), key=history.epoch_val_loss.__getitem__)
    assert history.stopped_early and history.epochs == best + 4
    assert model.weight.item() == history.records["w"][best] != history.records["w"][-1]
    assert abs(history.records["w"][best] - 1.0) < 0.1
    assert all(history.records["training"])  # back in train mode after each validation


def test_evaluate_restores_each_modules_mode():
    model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2), nn.BatchNorm1d(2))
    model.train()
    model[3].eval()  # a frozen normalization layer stays frozen
    data = TensorData(torch.randn(20, 3), torch.randint(0, 2, (20,)))
    running = model[1].running_mean.clone()
    evaluate(model, nn.CrossEntropyLoss(), data, batch_size=7)
    assert [m.training for m in model] == [True, True, True, False]
    assert torch.equal(model[1].running_mean, running)  # no statistics updated
    model.eval()
    evaluate(model, nn.CrossEntropyLoss(), data)
    assert not any(m.training for m in model.modules())


def test_evaluate_is_batch_size_independent():
    data, model = _classification(), _model()
    a = evaluate(model, nn.CrossEntropyLoss(), data, batch_size=7)
    b = evaluate(model, nn.CrossEntropyLoss(), data, batch_size=1000)
    assert a.loss == pytest.approx(b.loss, rel=1e-5) and a.accuracy == b.accuracy
    logits = model(data.x)
    assert a.accuracy == pytest.approx(float((logits.argmax(1) == data.y).float().mean()))


def test_wrong_shapes_get_clear_errors():
    data, model = _classification(), _model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    loss_fn = nn.CrossEntropyLoss()
    with pytest.raises(ValueError, match=r"cannot take train_data.x: samples of shape \(3,\)"):
        fit(
            model,
            optimizer,
            loss_fn,
            TensorData(torch.zeros(10, 3), torch.zeros(10).long()),
            epochs=1,
            batch_size=5,
        )
    with pytest.raises(ValueError, match="same number of samples"):
        fit(model, optimizer, loss_fn, TensorData(data.x, data.y[:-1]), epochs=1, batch_size=5)
    regression = make_noisy_function(10)
    net = mlp(1, 4, 1, 1)
    with pytest.raises(ValueError, match="would broadcast"):
        _fit(net, TensorData(regression.x, regression.y[:, 0]), loss_fn=nn.MSELoss(), epochs=1, batch_size=5)
    with pytest.raises(ValueError, match="val_data"):
        fit(
            model,
            optimizer,
            loss_fn,
            data,
            val_data=TensorData(torch.zeros(4, 5), torch.zeros(4).long()),
            epochs=1,
            batch_size=5,
        )
    with pytest.raises(ValueError, match="must be a pair"):
        fit(model, optimizer, loss_fn, data.x, epochs=1, batch_size=5)


def test_device_mismatch_gets_a_clear_error():
    data, model = _classification(), _model().to("meta")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="train_data is on cpu but the model is on meta"):
        fit(model, optimizer, nn.CrossEntropyLoss(), data, epochs=1, batch_size=10)
    with pytest.raises(ValueError, match="data is on cpu but the model is on meta"):
        evaluate(model, nn.CrossEntropyLoss(), data)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"epochs": 0}, r"epochs must be an integer >= 1, got 0"),
        ({"batch_size": -1}, "batch_size must be an integer >= 1, got -1"),
        ({"on_divergence": "ignore"}, r"on_divergence must be one of \('raise', 'stop'\), got 'ignore'"),
        ({"early_stopping_patience": 2}, "early_stopping_patience needs val_data"),
        ({"early_stopping_patience": 0}, "early_stopping_patience must be an integer >= 1"),
        ({"sync_every": 0}, "sync_every must be an integer >= 1"),
        ({"max_param_norm": -1.0}, "max_param_norm must be a number > 0, got -1.0"),
    ],
)
def test_fit_rejects_bad_arguments(kwargs, message):
    data, model = _classification(), _model()
    args = {"epochs": 1, "batch_size": 10, **kwargs}
    with pytest.raises(ValueError, match=message):
        _fit(model, data, **args)


def test_progress_bar_only_when_asked_or_long(capsys, monkeypatch):
    data, model = _classification(), _model()
    monkeypatch.delenv("TQDM_DISABLE", raising=False)

    def run(progress, epochs):
        _fit(model, data, epochs=epochs, batch_size=200, progress=progress)
        return capsys.readouterr()

    quiet = run(None, 1)  # one step, far shorter than the bar's delay: no bar at all
    assert quiet.out == "" and quiet.err == ""
    assert run(False, 3).err == ""
    shown = run(True, 3)
    assert shown.out == "" and "step" in shown.err


def test_progress_bar_off_when_the_environment_disables_tqdm(capsys, monkeypatch):
    data, model = _classification(), _model()
    monkeypatch.setattr("lib.train.PROGRESS_DELAY_S", 0.0)  # any run would show the bar at once
    for value, expect_bar in (("1", False), ("0", True)):
        monkeypatch.setenv("TQDM_DISABLE", value)
        _fit(model, data, epochs=2, batch_size=200, progress=None)
        assert ("step" in capsys.readouterr().err) == expect_bar, value


@pytest.mark.cuda
def test_fit_on_cuda_is_close_to_cpu():
    # fit promises identical runs on the CPU only; on CUDA the runs agree to rounding
    data = _classification()
    histories = []
    for device in ("cuda", "cpu"):
        model = _model().to(device)
        histories.append(_fit(model, data.to(device), epochs=2, batch_size=32))
    assert histories[0].step_loss == pytest.approx(histories[1].step_loss, rel=1e-4)
    assert histories[0].epoch_train_acc == pytest.approx(histories[1].epoch_train_acc, abs=0.02)


def _sequence_task(n: int = 24, steps: int = 5, seed: int = 0) -> tuple[nn.Module, TensorData]:
    """A per-position classifier: inputs (N, T, 4), logits (N, T, 3), one label per position."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, steps, 4, generator=gen)
    y = torch.randint(0, 3, (n, steps), generator=gen)
    torch.manual_seed(seed)
    return nn.Linear(4, 3), TensorData(x, y)


def _sequence_loss(output: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return nn.functional.cross_entropy(output.reshape(-1, output.shape[-1]), y.reshape(-1))


def test_accuracy_of_sequence_outputs_is_a_fraction_of_the_labels():
    # (B, T, C) logits against (B, T) labels: B * T predictions, not B
    model, data = _sequence_task()
    expected = (model(data.x).argmax(-1) == data.y).double().mean().item()  # by hand, not via lib
    result = evaluate(model, _sequence_loss, data, batch_size=7)
    assert 0 <= result.accuracy <= 1 and result.accuracy == pytest.approx(expected, abs=1e-12)
    history = _fit(model, data, lr=0.0, loss_fn=_sequence_loss, batch_size=8)
    assert history.epoch_train_acc[0] == pytest.approx(expected, abs=1e-12)  # lr 0: the same weights


def test_fit_copies_to_the_host_once_per_sync_and_never_per_step(monkeypatch):
    # 200 samples in batches of 32: 7 steps an epoch, synced after step 4 and at the epoch's
    # end, then the validation (loss and accuracy in one copy): 3 host copies per epoch
    import lib.train

    calls = {"to_host": 0, "item": 0}
    to_host, item = lib.train._to_host, torch.Tensor.item

    def counted_to_host(values):
        calls["to_host"] += 1
        return to_host(values)

    def counted_item(tensor):
        calls["item"] += 1
        return item(tensor)

    data, model = _classification(), _model()
    monkeypatch.setattr(lib.train, "_to_host", counted_to_host)
    monkeypatch.setattr(torch.Tensor, "item", counted_item)
    history = _fit(model, data, val_data=data, epochs=2, batch_size=32, sync_every=4)
    monkeypatch.undo()
    assert history.steps == 14 and calls == {"to_host": 2 * 3, "item": 0}


def test_fit_gives_lbfgs_the_closure_it_needs():
    data = make_noisy_function(32, seed=0)
    torch.manual_seed(0)
    model = mlp(1, 8, 1, 1)
    lbfgs = torch.optim.LBFGS(model.parameters(), lr=0.5, max_iter=5)
    history = _fit(model, data, optimizer=lbfgs, loss_fn=nn.MSELoss(), epochs=5)
    assert history.steps == 5 and history.step_loss[-1] < 0.5 * history.step_loss[0]
