"""One training loop for the whole book, and the history it returns.

:func:`fit` trains any model with any ``torch.optim.Optimizer`` (the book's own
optimizers subclass it), an optional learning-rate schedule, a loss and in-memory data,
and returns a :class:`History` that ``lib.plot`` draws directly. :func:`evaluate`
measures loss and accuracy in ``eval()`` mode.

What the loop promises:

- **Honest records.** Per step: loss, learning rate, gradient norm and wall-clock time;
  per epoch: train and validation loss and accuracy, wall-clock time and whatever a
  callback returns.
- **Speed.** Per-step values stay on the device and are copied to the host in one go
  every ``sync_every`` steps, so a GPU run does not wait on the host at every step.
- **Divergence.** A non-finite loss or a parameter norm above ``max_param_norm`` stops
  the run; the error (or the history's flags) names the step and the learning rate.
- **Determinism.** For a given ``seed`` two runs on the CPU give identical histories
  (except the times): batches are shuffled by a seeded generator, and the global torch
  generator (dropout) is seeded inside :func:`fit` and restored afterwards.
- **Modes.** Evaluation runs in ``eval()`` mode under ``torch.no_grad()`` and puts
  every submodule back in the mode it was in (BatchNorm's running statistics matter).
- **Quiet output.** The progress bar appears only for runs longer than two seconds, on
  standard error, and never when ``TQDM_DISABLE`` is set, as it is when the book's
  notebooks are executed and tested (see :func:`fit`), so nbval compares nothing that
  depends on timing.
"""

import copy
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import torch
from torch import Tensor, nn
from tqdm import tqdm

from lib.data import BatchLoader

LossFn = Callable[[Tensor, Tensor], Tensor]
Schedule = Callable[[int], float]
EpochCallback = Callable[[nn.Module, int, "History"], dict[str, Any] | None]

PROGRESS_DELAY_S = 2.0


class DivergenceError(RuntimeError):
    """Training diverged: the loss became NaN or infinite, or the parameters exploded.

    Attributes:
        step: the step (counted from 0) at which divergence was detected.
        lr: the learning rate of the first parameter group at that step.
        history: the history up to and including that step.
    """

    def __init__(self, message: str, step: int, lr: float, history: "History") -> None:
        super().__init__(message)
        self.step = step
        self.lr = lr
        self.history = history


@dataclass
class History:
    """What happened during :func:`fit`, ready for ``lib.plot``.

    Step lists have one entry per optimizer step, epoch lists one per completed epoch.
    Accuracies are recorded only for classification, that is when the targets are
    integer class labels; for regression the two accuracy lists stay **empty**.

    Attributes:
        step_loss: the training loss of each mini-batch (before the step's update).
        step_lr: the learning rate of the first parameter group used by each step.
        step_grad_norm: the Euclidean norm of all gradients together at each step.
        step_time: seconds since the start of training when each step was issued.
        epoch_train_loss: the mean of the epoch's mini-batch losses (weighted by batch
            size), measured on the fly in training mode; with ``eval_train=True``, the
            loss over the whole training set in ``eval()`` mode after the epoch.
        epoch_val_loss: the validation loss after each epoch (empty without
            ``val_data``).
        epoch_train_acc: training accuracy, measured like ``epoch_train_loss``.
        epoch_val_acc: validation accuracy after each epoch.
        epoch_time: seconds since the start of training at the end of each epoch.
        records: for each key the epoch callback returned, the list of its values.
        diverged: whether training stopped because it diverged.
        diverged_step: the step at which divergence was detected, or ``None``.
        best_epoch: the epoch (from 0) with the lowest validation loss, or ``None``
            without validation data.
        stopped_early: whether early stopping ended the run before ``epochs``.
    """

    step_loss: list[float] = field(default_factory=list)
    step_lr: list[float] = field(default_factory=list)
    step_grad_norm: list[float] = field(default_factory=list)
    step_time: list[float] = field(default_factory=list)
    epoch_train_loss: list[float] = field(default_factory=list)
    epoch_val_loss: list[float] = field(default_factory=list)
    epoch_train_acc: list[float] = field(default_factory=list)
    epoch_val_acc: list[float] = field(default_factory=list)
    epoch_time: list[float] = field(default_factory=list)
    records: dict[str, list[Any]] = field(default_factory=dict)
    diverged: bool = False
    diverged_step: int | None = None
    best_epoch: int | None = None
    stopped_early: bool = False

    @property
    def steps(self) -> int:
        """The number of recorded optimizer steps."""
        return len(self.step_loss)

    @property
    def epochs(self) -> int:
        """The number of completed epochs."""
        return len(self.epoch_train_loss)


class Evaluation(NamedTuple):
    """The result of :func:`evaluate`."""

    #: The mean loss over the data.
    loss: float
    #: The fraction of correct predictions, or ``None`` for regression (floating-point targets).
    accuracy: float | None


# ------------------------------------------------------------------------------ helpers


def _is_classification(y: Tensor) -> bool:
    return not (y.is_floating_point() or y.is_complex())


def _correct(output: Tensor, y: Tensor) -> Tensor:
    """The number of correct predictions, as a 0-d tensor on the device."""
    if output.dim() == y.dim() + 1 and output.shape[-1] > 1:  # (B, C) logits, (B,) labels
        predicted = output.argmax(dim=-1)
    else:  # one logit per sample: class 1 when it is positive
        predicted = (output.reshape(y.shape) > 0).to(y.dtype)
    return (predicted == y).sum()


def _grad_norm(params: list[Tensor], loss: Tensor) -> Tensor:
    """The Euclidean norm of all gradients together, as a 0-d tensor on the device."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return loss.new_zeros(())
    # torch._foreach_norm is what torch.nn.utils.clip_grad_norm_ uses; one call for all
    # tensors, and cheaper than torch.nn.utils.get_total_norm's grouping by device
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def _module_modes(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    return [(module, module.training) for module in model.modules()]


def _restore_modes(modes: list[tuple[nn.Module, bool]]) -> None:
    for module, training in modes:
        module.training = training


def _model_device(model: nn.Module) -> torch.device | None:
    for tensor in model.parameters():
        return tensor.device
    for tensor in model.buffers():
        return tensor.device
    return None


def _check_data(name: str, data: Any, model: nn.Module) -> tuple[Tensor, Tensor]:
    """Check that ``data`` is ``(x, y)`` on the model's device with matching lengths."""
    if not (isinstance(data, tuple | list) and len(data) == 2 and all(isinstance(t, Tensor) for t in data)):
        raise ValueError(f"{name} must be a pair (x, y) of tensors, got {type(data).__name__}")
    x, y = data
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            f"{name}: x and y must have the same number of samples, "
            f"got x {tuple(x.shape)} and y {tuple(y.shape)}"
        )
    if x.shape[0] == 0:
        raise ValueError(f"{name} holds no samples")
    if x.device != y.device:
        raise ValueError(f"{name}: x is on {x.device} but y is on {y.device}")
    device = _model_device(model)
    if device is not None and device != x.device:
        raise ValueError(
            f"{name} is on {x.device} but the model is on {device}: move one of them, "
            f"for example with model.to(device) and data.to(device)"
        )
    return x, y


def _check_shapes(name: str, model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor) -> None:
    """Run the model and the loss on two samples, without side effects, to catch shape errors."""
    modes = _module_modes(model)
    model.eval()
    try:
        with torch.no_grad():
            try:
                output = model(x[:2])
            except (RuntimeError, ValueError) as error:
                raise ValueError(
                    f"the model cannot take {name}.x: samples of shape {tuple(x.shape[1:])} ({error})"
                ) from error
            if y.is_floating_point() and output.shape != y[:2].shape:
                raise ValueError(
                    f"the model's output has shape {tuple(output.shape[1:])} per sample but {name}.y has "
                    f"{tuple(y.shape[1:])}: the loss would broadcast them; reshape y (for example "
                    f"y.reshape(-1, 1)) or the model's output"
                )
            try:
                loss = loss_fn(output, y[:2])
            except (RuntimeError, ValueError, IndexError) as error:
                raise ValueError(
                    f"the loss cannot compare the model's output of shape {tuple(output.shape[1:])} per "
                    f"sample with {name}.y of shape {tuple(y.shape[1:])} per sample ({error})"
                ) from error
            if loss.dim() != 0:
                raise ValueError(
                    f"loss_fn must return a scalar (the batch mean), got shape {tuple(loss.shape)}"
                )
    finally:
        _restore_modes(modes)


def _evaluate_on_device(
    model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, batch_size: int
) -> tuple[Tensor, Tensor | None]:
    """Mean loss and accuracy as 0-d tensors on the device (no host sync)."""
    modes = _module_modes(model)
    model.eval()
    classification = _is_classification(y)
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                xb, yb = x[start : start + batch_size], y[start : start + batch_size]
                output = model(xb)
                loss_sum += loss_fn(output, yb).float() * xb.shape[0]
                if classification:
                    correct += _correct(output, yb)
    finally:
        _restore_modes(modes)
    n = x.shape[0]
    return loss_sum / n, (correct.double() / n if classification else None)


def evaluate(
    model: nn.Module, loss_fn: LossFn, data: tuple[Tensor, Tensor], batch_size: int = 1024
) -> Evaluation:
    """Loss and accuracy of ``model`` on ``data``, in ``eval()`` mode without gradients.

    The mode of every submodule is restored afterwards, so calling this in the middle
    of training does not switch BatchNorm or dropout off for good.

    Args:
        model: the network.
        loss_fn: a function ``(output, y) -> loss`` returning the batch mean.
        data: a pair ``(x, y)`` on the model's device.
        batch_size: samples per forward pass, at least 1 (it does not change the result).

    Returns:
        An :class:`Evaluation`; ``accuracy`` is ``None`` when ``y`` is floating point.

    Raises:
        ValueError: if ``data`` is not a pair of tensors of equal length on the model's
            device, or ``batch_size`` is not a positive integer.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    x, y = _check_data("data", data, model)
    loss, acc = _evaluate_on_device(model, loss_fn, x, y, batch_size)
    return Evaluation(loss.item(), None if acc is None else acc.item())


def _progress_file(progress: bool | None) -> Any:
    """Where the progress bar goes: ``None`` for no bar."""
    if progress is False:
        return None
    # automatic: off where tqdm is switched off through the environment (the book's test and
    # execution runs set TQDM_DISABLE, so no bar, whose text depends on timing, is stored)
    if progress is None and os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false", "no"):
        return None
    return sys.stderr


def _check_positive_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")


# --------------------------------------------------------------------------------- fit


def fit(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    train_data: tuple[Tensor, Tensor],
    *,
    epochs: int,
    batch_size: int,
    val_data: tuple[Tensor, Tensor] | None = None,
    schedule: Schedule | None = None,
    seed: int = 0,
    shuffle: bool = True,
    drop_last: bool = False,
    transform: Callable[[Tensor], Tensor] | None = None,
    early_stopping_patience: int | None = None,
    callback: EpochCallback | None = None,
    on_divergence: Literal["raise", "stop"] = "raise",
    max_param_norm: float | None = 1e6,
    eval_train: bool = False,
    eval_batch_size: int = 1024,
    sync_every: int = 32,
    progress: bool | None = None,
) -> History:
    """Train ``model`` on in-memory data and return its :class:`History`.

    Each step: set the learning rate from ``schedule`` (if any), forward a mini-batch,
    compute the loss, back-propagate, record the gradient norm, take the optimizer step.
    After each epoch: evaluate on ``val_data`` (if any), check early stopping, call
    ``callback``.

    Divergence is checked every ``sync_every`` steps and at the end of each epoch, when
    the per-step values are copied to the host: the run stops at the first step whose
    loss is NaN or infinite, or, if the parameter norm exceeds ``max_param_norm``, at the
    last step before that check. The step lists end at the step where divergence was
    detected; the parameters are left as they are (up to ``sync_every - 1`` steps later).

    The progress bar (tqdm) appears only after two seconds, so short runs print nothing.
    With ``progress=None`` it goes to standard error (in a notebook, below the cell)
    unless the environment variable ``TQDM_DISABLE`` is set, as it is when the tests or
    ``scripts/execute.py`` run the book's notebooks, so no stored output depends on timing;
    ``progress=True`` shows it at once, ``progress=False`` never.

    Args:
        model: the network, on the device of the data.
        optimizer: any ``torch.optim.Optimizer`` over the model's parameters.
        loss_fn: a function ``(output, y) -> loss`` returning the batch mean, such as
            ``nn.CrossEntropyLoss()`` or ``nn.MSELoss()``.
        train_data: a pair ``(x, y)``, for example a ``lib.data.TensorData``.
            Integer ``y`` means classification: accuracy is then recorded.
        epochs: passes over the training data, at least 1.
        batch_size: samples per step, at least 1.
        val_data: an optional pair ``(x, y)`` evaluated after each epoch.
        schedule: a function ``step -> lr``; before step ``t`` (from 0) every parameter
            group gets ``group["lr"] = schedule(t)``.
        seed: seeds the batch order and, for the duration of the run, torch's global
            generator (dropout); the global generator is restored afterwards.
        shuffle: draw a new batch order every epoch.
        drop_last: skip the last batch of an epoch when it is smaller than ``batch_size``.
        transform: augmentation applied to each input batch on the device, for example
            ``lib.data.RandomShiftRotate()``.
        early_stopping_patience: stop when the validation loss has not improved for
            this many epochs, and restore the weights of the best epoch; needs
            ``val_data``.
        callback: called after each epoch as ``callback(model, epoch, history)``; the
            dict it returns is appended key by key to ``history.records``.
        on_divergence: ``"raise"`` raises :class:`DivergenceError`; ``"stop"`` ends the
            run and sets ``history.diverged`` and ``history.diverged_step``.
        max_param_norm: the parameter norm that counts as divergence, or ``None`` to
            check only the loss.
        eval_train: after each epoch, re-evaluate the whole training set in ``eval()``
            mode for ``epoch_train_loss`` and ``epoch_train_acc`` instead of averaging
            the mini-batches seen during the epoch.
        eval_batch_size: samples per forward pass when evaluating.
        sync_every: copy per-step values to the host (and check divergence) every this
            many steps; 1 checks every step.
        progress: ``None`` (automatic), ``True`` or ``False``; see above.

    Returns:
        The :class:`History` of the run.

    Raises:
        ValueError: if an argument is outside its range, the data is not on the model's
            device, or the shapes of the data, the model's output and the loss do not fit.
        DivergenceError: if training diverges and ``on_divergence="raise"``.
    """
    # ---- check everything before the first step
    _check_positive_int("epochs", epochs)
    _check_positive_int("batch_size", batch_size)
    _check_positive_int("eval_batch_size", eval_batch_size)
    _check_positive_int("sync_every", sync_every)
    if on_divergence not in ("raise", "stop"):
        raise ValueError(f"on_divergence must be 'raise' or 'stop', got {on_divergence!r}")
    if early_stopping_patience is not None:
        _check_positive_int("early_stopping_patience", early_stopping_patience)
        if val_data is None:
            raise ValueError("early_stopping_patience needs val_data to watch the validation loss")
    if max_param_norm is not None and not max_param_norm > 0:
        raise ValueError(f"max_param_norm must be > 0 or None, got {max_param_norm!r}")
    x, y = _check_data("train_data", train_data, model)
    _check_shapes("train_data", model, loss_fn, x, y)
    if val_data is not None:
        x_val, y_val = _check_data("val_data", val_data, model)
        _check_shapes("val_data", model, loss_fn, x_val, y_val)
    loader = BatchLoader(
        x, y, batch_size=batch_size, shuffle=shuffle, drop_last=drop_last, seed=seed, transform=transform
    )
    if len(loader) == 0:
        raise ValueError(
            f"drop_last=True with batch_size={batch_size} larger than the {x.shape[0]} training samples "
            "leaves no batch"
        )

    device = x.device
    fork_devices = [] if device.type == "cpu" else [device.index or 0]
    with torch.random.fork_rng(devices=fork_devices, device_type=device.type):
        torch.manual_seed(seed)
        return _fit_loop(
            model,
            optimizer,
            loss_fn,
            loader,
            val_data=val_data,
            epochs=epochs,
            schedule=schedule,
            early_stopping_patience=early_stopping_patience,
            callback=callback,
            on_divergence=on_divergence,
            max_param_norm=max_param_norm,
            eval_train=eval_train,
            eval_batch_size=eval_batch_size,
            sync_every=sync_every,
            progress=progress,
        )


def _fit_loop(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: LossFn,
    loader: BatchLoader,
    *,
    val_data: tuple[Tensor, Tensor] | None,
    epochs: int,
    schedule: Schedule | None,
    early_stopping_patience: int | None,
    callback: EpochCallback | None,
    on_divergence: str,
    max_param_norm: float | None,
    eval_train: bool,
    eval_batch_size: int,
    sync_every: int,
    progress: bool | None,
) -> History:
    history = History()
    classification = _is_classification(loader.y)
    params = [p for p in model.parameters() if p.requires_grad]
    best_state: dict[str, Tensor] | None = None
    best_val = math.inf
    epochs_without_improvement = 0
    progress_file = _progress_file(progress)
    bar = tqdm(
        total=epochs * len(loader),
        file=progress_file,
        disable=progress_file is None,
        delay=0.0 if progress else PROGRESS_DELAY_S,
        leave=False,
        unit="step",
        dynamic_ncols=True,
    )

    # per-step values waiting on the device for the next sync
    pending_loss: list[Tensor] = []
    pending_norm: list[Tensor] = []
    pending_output: list[Tensor] = []
    pending_target: list[Tensor] = []
    pending_size: list[int] = []
    epoch_sizes: list[int] = []
    epoch_correct: list[float] = []
    epoch_start_step = 0

    def sync() -> tuple[int, str] | None:
        """Copy pending values to the host; return (step, reason) on divergence."""
        if not pending_loss:
            return None
        parts = [torch.stack(pending_loss).float(), torch.stack(pending_norm).float()]
        if pending_output:
            output, target = torch.cat(pending_output), torch.cat(pending_target)
            parts.append(_correct(output, target).float().reshape(1))
        if max_param_norm is not None:
            parts.append(torch.nn.utils.get_total_norm(params).float().reshape(1))
        values = torch.cat(parts).tolist()  # the one host sync
        k = len(pending_loss)
        losses, norms = values[:k], values[k : 2 * k]
        first = len(history.step_loss)
        history.step_loss.extend(losses)
        history.step_grad_norm.extend(norms)
        epoch_sizes.extend(pending_size)
        if pending_output:
            epoch_correct.append(values[2 * k])
        for pending in (pending_loss, pending_norm, pending_output, pending_target, pending_size):
            pending.clear()
        for i, loss in enumerate(losses):
            if not math.isfinite(loss):
                return first + i, f"the loss is {loss}"
        if max_param_norm is not None:
            param_norm = values[-1]
            if not param_norm <= max_param_norm:  # also catches NaN
                return (
                    first + k - 1,
                    f"the parameter norm is {param_norm:.3g} > max_param_norm={max_param_norm:g}",
                )
        return None

    def stop_on_divergence(step: int, reason: str) -> None:
        for name in ("step_loss", "step_lr", "step_grad_norm", "step_time"):
            del getattr(history, name)[step + 1 :]
        history.diverged = True
        history.diverged_step = step
        lr = history.step_lr[step]
        bar.close()
        if on_divergence == "raise":
            raise DivergenceError(
                f"training diverged at step {step} (epoch {step // len(loader)}) with learning rate "
                f"{lr:.4g}: {reason}. Lower the learning rate, or pass on_divergence='stop' to get "
                "the history up to this step",
                step,
                lr,
                history,
            )

    start = time.perf_counter()
    step = 0
    for epoch in range(epochs):
        model.train()
        epoch_sizes.clear()
        epoch_correct.clear()
        epoch_start_step = step
        for xb, yb in loader:
            if schedule is not None:
                lr = float(schedule(step))
                for group in optimizer.param_groups:
                    group["lr"] = lr
            history.step_lr.append(float(optimizer.param_groups[0]["lr"]))
            history.step_time.append(time.perf_counter() - start)

            output = model(xb)
            loss = loss_fn(output, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            pending_norm.append(_grad_norm(params, loss))
            optimizer.step()

            pending_loss.append(loss.detach())
            pending_size.append(xb.shape[0])
            if classification:  # counted at the next sync, for all pending steps at once
                pending_output.append(output.detach())
                pending_target.append(yb)
            step += 1
            bar.update()
            if len(pending_loss) >= sync_every and (diverged := sync()) is not None:
                stop_on_divergence(*diverged)
                return history
        if (diverged := sync()) is not None:
            stop_on_divergence(*diverged)
            return history

        # ---- end of epoch: train and validation metrics
        if eval_train:
            loss_t, acc_t = _evaluate_on_device(model, loss_fn, loader.x, loader.y, eval_batch_size)
            history.epoch_train_loss.append(loss_t.item())
            if acc_t is not None:
                history.epoch_train_acc.append(acc_t.item())
        else:
            losses = history.step_loss[epoch_start_step:]
            total = sum(epoch_sizes)
            history.epoch_train_loss.append(
                sum(v * n for v, n in zip(losses, epoch_sizes, strict=True)) / total
            )
            if classification:
                history.epoch_train_acc.append(sum(epoch_correct) / total)
        if val_data is not None:
            loss_v, acc_v = _evaluate_on_device(model, loss_fn, val_data[0], val_data[1], eval_batch_size)
            val_loss = loss_v.item()
            history.epoch_val_loss.append(val_loss)
            if acc_v is not None:
                history.epoch_val_acc.append(acc_v.item())
            if val_loss < best_val:
                best_val = val_loss
                history.best_epoch = epoch
                epochs_without_improvement = 0
                if early_stopping_patience is not None:
                    best_state = copy.deepcopy(model.state_dict())
            else:
                epochs_without_improvement += 1
        history.epoch_time.append(time.perf_counter() - start)
        if callback is not None:
            record = callback(model, epoch, history)
            for key, value in (record or {}).items():
                history.records.setdefault(key, []).append(value)
        postfix = {"loss": f"{history.epoch_train_loss[-1]:.4g}"}
        if history.epoch_val_loss:
            postfix["val_loss"] = f"{history.epoch_val_loss[-1]:.4g}"
        bar.set_postfix(postfix, refresh=False)
        if early_stopping_patience is not None and epochs_without_improvement >= early_stopping_patience:
            history.stopped_early = epoch < epochs - 1
            break

    bar.close()
    if best_state is not None:
        model.load_state_dict(best_state)
    return history
