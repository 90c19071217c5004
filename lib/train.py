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
- **Data parallelism.** Inside a ``torch.distributed`` process group, with the model
  wrapped in ``DistributedDataParallel``, the same call trains on all processes together:
  each process takes its share of every batch (``batch_size`` stays the global batch, see
  :class:`lib.data.BatchLoader`), and the history, on every process, is the one of the
  global batch (the losses and accuracies are summed over the processes when the values
  are copied to the host). ``lib.distributed`` launches such processes.
- **Quiet output.** The progress bar appears only for runs longer than two seconds, on
  standard error, and never when ``TQDM_DISABLE`` is set, as it is when the book's
  notebooks are executed and tested (see :func:`fit`), so nbval compares nothing that
  depends on timing.
"""

import contextlib
import copy
import inspect
import math
import os
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from lib import checks
from lib.data import BatchLoader
from lib.schedules import set_lr

__all__ = [
    "DivergenceError",
    "History",
    "Evaluation",
    "evaluate",
    "fit",
]

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


def _predicted(output: Tensor, y: Tensor) -> Tensor:
    """The predicted classes, shaped like the labels ``y``, on the device."""
    if output.dim() == y.dim() + 1 and output.shape[-1] > 1:  # (B, ..., C) logits, (B, ...) labels
        return output.argmax(dim=-1)
    return (output.reshape(y.shape) > 0).to(y.dtype)  # one logit per sample: class 1 when positive


def _correct(output: Tensor, y: Tensor) -> Tensor:
    """The number of correct predictions, as a 0-d tensor on the device."""
    return (_predicted(output, y) == y).sum()


def _tensor_norms(tensors: list[Tensor], like: Tensor) -> list[Tensor]:
    """The Euclidean norm of each tensor, 0-d tensors on the device, in one call.

    ``torch._foreach_norm`` is what ``torch.nn.utils.clip_grad_norm_(..., foreach=True)``
    calls: one kernel for all tensors on a GPU instead of one per tensor, the same per-tensor
    norms, bit for bit, on the CPU.
    """
    return torch._foreach_norm(tensors) if tensors else [like.new_zeros(())]


def _norms_of_norms(rows: list[list[Tensor]]) -> Tensor:
    """For each row of per-tensor norms, the norm of all those tensors together.

    Rows of equal length (the usual case: every step has the same gradients) are stacked
    into one (rows, tensors) matrix and reduced in one call, with the same bits as one
    reduction per row.
    """
    if len({len(row) for row in rows}) == 1:
        norms = torch.stack([norm for row in rows for norm in row]).reshape(len(rows), -1)
        return torch.linalg.vector_norm(norms, dim=1)
    return torch.stack([torch.linalg.vector_norm(torch.stack(row)) for row in rows])


def _total_norm(tensors: list[Tensor], like: Tensor) -> Tensor:
    """The Euclidean norm of all ``tensors`` together, as a 0-d tensor on the device: the
    norm of the per-tensor norms, as ``clip_grad_norm_`` computes it (torch 2.6 added a
    public function for it, above the floor of torch 2.1)."""
    return _norms_of_norms([_tensor_norms(tensors, like)])[0]


def _packed(values: dict[str, Tensor], op: Callable[[Tensor], Tensor]) -> dict[str, Tensor]:
    """Apply ``op`` once to the named tensors packed into one flat float32 tensor, and give
    the result back by name: one transfer or one collective instead of one per name."""
    flat = op(torch.cat([value.float().reshape(-1) for value in values.values()]))
    return dict(zip(values, flat.split([value.numel() for value in values.values()])))


def _to_host(values: dict[str, Tensor]) -> dict[str, list[float]]:
    """The named tensors as lists of floats, copied to the host together: one host sync.

    The training loop's only synchronisations go through here (tests count the calls).
    Counts are exact up to 2**24 in float32.
    """
    return {name: part.tolist() for name, part in _packed(values, Tensor.cpu).items()}


def _summed_over_processes(flat: Tensor) -> Tensor:
    dist.all_reduce(flat)  # sums over the processes, in place
    return flat


def _process_group(model: nn.Module) -> tuple[int, int]:
    """This process's rank and the world size in ``torch.distributed``'s default group, or (0, 1).

    Raises:
        ValueError: in a group of several processes, if the model is not wrapped in
            ``DistributedDataParallel`` (its gradients would not be averaged).
    """
    if not (dist.is_available() and dist.is_initialized()):
        return 0, 1
    rank, world_size = dist.get_rank(), dist.get_world_size()
    if world_size > 1 and not isinstance(model, DistributedDataParallel):
        raise ValueError(
            f"fit runs in a process group of world size {world_size} and shards the data: wrap the "
            "model in torch.nn.parallel.DistributedDataParallel so that the gradients are averaged"
        )
    return rank, world_size


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
    """Mean loss and the number of correct predictions, as 0-d tensors on the device (no host sync)."""
    modes = _module_modes(model)
    model.eval()
    classification = _is_classification(y)
    loss_sum = torch.zeros((), device=x.device)
    correct = torch.zeros((), device=x.device, dtype=torch.int64)  # a count: exact, no float64 needed
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
    return loss_sum / x.shape[0], (correct if classification else None)


def _evaluate_on_host(
    model: nn.Module, loss_fn: LossFn, x: Tensor, y: Tensor, batch_size: int
) -> tuple[float, float | None]:
    """Mean loss and accuracy as floats, in one host sync; the accuracy is divided on the host
    (MPS has no float64)."""
    loss, correct = _evaluate_on_device(model, loss_fn, x, y, batch_size)
    if correct is None:
        return _to_host({"loss": loss})["loss"][0], None
    host = _to_host({"loss": loss, "correct": correct})
    # a fraction of the labels, not of the samples: a (B, T) target holds B * T labels
    return host["loss"][0], host["correct"][0] / y.numel()


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
    checks.integer("batch_size", batch_size, 1)
    x, y = _check_data("data", data, model)
    return Evaluation(*_evaluate_on_host(model, loss_fn, x, y, batch_size))


def _progress_file(progress: bool | None) -> Any:
    """Where the progress bar goes: ``None`` for no bar."""
    if progress is False:
        return None
    # automatic: off where tqdm is switched off through the environment (the book's test and
    # execution runs set TQDM_DISABLE, so no bar, whose text depends on timing, is stored)
    if progress is None and os.environ.get("TQDM_DISABLE", "").lower() not in ("", "0", "false", "no"):
        return None
    return sys.stderr


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
    detected; the parameters are left as they are (up to ``sync_every - 1`` steps later),
    except with early stopping, where the weights of the best epoch are restored as at
    the normal end of the run.

    The progress bar (tqdm) appears only after two seconds, so short runs print nothing.
    With ``progress=None`` it goes to standard error (in a notebook, below the cell)
    unless the environment variable ``TQDM_DISABLE`` is set, as it is when the tests or
    ``scripts/execute.py`` run the book's notebooks, so no stored output depends on timing;
    ``progress=True`` shows it at once, ``progress=False`` never.

    Inside a ``torch.distributed`` process group of ``W`` processes (see
    ``lib.distributed.launch``) ``fit`` needs the model wrapped in
    ``DistributedDataParallel`` and the same arguments on every process. Each process
    trains on its share of every batch of ``batch_size`` samples, so the steps are those
    of one process with the whole batch (exactly so when ``W`` divides ``batch_size``).
    Every process returns the same history, the global batch's, except the times, which
    are its own; rank 0's is the one to keep. Validation runs in full on every process.

    Args:
        model: the network, on the device of the data.
        optimizer: any ``torch.optim.Optimizer`` over the model's parameters.
        loss_fn: a function ``(output, y) -> loss`` returning the batch mean, such as
            ``nn.CrossEntropyLoss()`` or ``nn.MSELoss()``.
        train_data: a pair ``(x, y)``, for example a ``lib.data.TensorData``.
            Integer ``y`` means classification: accuracy is then recorded.
        epochs: passes over the training data, at least 1.
        batch_size: samples per step, at least 1 (over all processes together, and at least
            the world size).
        val_data: an optional pair ``(x, y)`` evaluated after each epoch.
        schedule: a function ``step -> lr``; before step ``t`` (from 0) every parameter
            group gets ``group["lr"] = schedule(t)`` (:func:`lib.schedules.set_lr`).
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
    for name, value in (
        ("epochs", epochs),
        ("batch_size", batch_size),
        ("eval_batch_size", eval_batch_size),
        ("sync_every", sync_every),
    ):
        checks.integer(name, value, 1)
    checks.one_of("on_divergence", on_divergence, ("raise", "stop"))
    if early_stopping_patience is not None:
        checks.integer("early_stopping_patience", early_stopping_patience, 1)
        if val_data is None:
            raise ValueError("early_stopping_patience needs val_data to watch the validation loss")
    if max_param_norm is not None:
        checks.number("max_param_norm", max_param_norm, 0, low_open=True, finite=False)
    x, y = _check_data("train_data", train_data, model)
    _check_shapes("train_data", model, loss_fn, x, y)
    if val_data is not None:
        x_val, y_val = _check_data("val_data", val_data, model)
        _check_shapes("val_data", model, loss_fn, x_val, y_val)
    rank, world_size = _process_group(model)
    loader = BatchLoader(
        x,
        y,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        seed=seed,
        transform=transform,
        rank=rank,
        world_size=world_size,
    )
    if len(loader) == 0:
        raise ValueError(
            f"drop_last=True with batch_size={batch_size} larger than the {x.shape[0]} training samples "
            "leaves no batch"
        )

    with _seeded(seed):
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


@contextlib.contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """Seed torch's global generators for the block and restore them afterwards.

    ``torch.manual_seed`` seeds the CPU and every CUDA and MPS device, so the state of each
    of them is saved and restored (``torch.random.fork_rng`` restores only the GPUs it is
    given).
    """
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    mps = torch.mps.get_rng_state() if torch.backends.mps.is_available() else None
    torch.manual_seed(seed)
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        if mps is not None:
            torch.mps.set_rng_state(mps)


class _Divergence(NamedTuple):
    step: int
    reason: str


class _StepRecorder:
    """Per-step values kept on the device and copied to the history in one host sync.

    ``add`` queues a step's loss, the norm of each gradient and (for classification) the
    predicted classes and the labels: one kernel each per step, and nothing reduced yet.
    ``sync`` turns them into each step's gradient norm and the number of correct
    predictions, and copies everything queued, with the parameter norm, in one transfer
    (:func:`_to_host`) and returns a :class:`_Divergence` if a loss is not
    finite or the parameter norm exceeds ``max_param_norm``. ``epoch_loss``/``epoch_accuracy``
    average the epoch's mini-batches, weighted by batch size (the accuracy by the number
    of labels: ``labels_per_sample`` for a sequence target). With several processes,
    ``sync`` first sums the shares' losses and counts over the processes in one
    ``all_reduce``, so every process records the global batch's values (the gradient,
    hence its norm, is already the same on all of them).
    """

    def __init__(
        self,
        history: History,
        params: list[Tensor],
        max_param_norm: float | None,
        world_size: int = 1,
        labels_per_sample: int = 1,
    ) -> None:
        self.history = history
        self.params = params
        self.max_param_norm = max_param_norm
        self.world_size = world_size
        self.labels_per_sample = labels_per_sample
        self.shares: list[int] = []  # this process's batch sizes, summed over processes at sync
        self.losses: list[Tensor] = []
        self.tensor_norms: list[list[Tensor]] = []  # per step, the norm of each gradient
        self.predicted: list[Tensor] = []
        self.labels: list[Tensor] = []
        self.start_epoch()

    def start_epoch(self) -> None:
        self.epoch_first_step = len(self.history.step_loss) + len(self.losses)
        self.epoch_sizes: list[int] = []
        self.epoch_correct = 0.0

    def add(
        self, loss: Tensor, tensor_norms: list[Tensor], batch_size: int, predicted: Tensor | None, y: Tensor
    ) -> None:
        self.losses.append(loss.detach())
        self.tensor_norms.append(tensor_norms)
        if self.world_size > 1:
            self.shares.append(batch_size)
        else:
            self.epoch_sizes.append(batch_size)
        if predicted is not None:  # kept in the labels' shape: the batches are joined along dim 0
            self.predicted.append(predicted)
            self.labels.append(y)

    def __len__(self) -> int:
        return len(self.losses)

    def sync(self) -> _Divergence | None:
        if not self.losses:
            return None
        queued = {"loss": torch.stack(self.losses), "grad_norm": _norms_of_norms(self.tensor_norms)}
        if self.predicted:
            queued["correct"] = (torch.cat(self.predicted) == torch.cat(self.labels)).sum()
        if self.world_size > 1:
            queued.update(self._reduce(queued))
        if self.max_param_norm is not None:
            queued["param_norm"] = _total_norm(self.params, self.losses[0])
        host = _to_host(queued)  # the one host sync
        first = len(self.history.step_loss)
        self.history.step_loss.extend(host["loss"])
        self.history.step_grad_norm.extend(host["grad_norm"])
        self.epoch_sizes.extend(int(n) for n in host.get("size", []))
        self.epoch_correct += sum(host.get("correct", []))
        self.losses, self.tensor_norms, self.predicted, self.labels = [], [], [], []
        for i, loss in enumerate(host["loss"]):
            if not math.isfinite(loss):
                return _Divergence(first + i, f"the loss is {loss}")
        if "param_norm" in host and not host["param_norm"][0] <= self.max_param_norm:  # also NaN
            return _Divergence(
                first + len(host["loss"]) - 1,
                f"the parameter norm is {host['param_norm'][0]:.3g} > max_param_norm={self.max_param_norm:g}",
            )
        return None

    def _reduce(self, queued: dict[str, Tensor]) -> dict[str, Tensor]:
        """The global batches' mean losses, sizes and correct predictions, over all processes."""
        sizes = queued["loss"].new_tensor(self.shares, dtype=torch.float32)
        self.shares = []
        shares = {"loss_sum": queued["loss"].float() * sizes, "size": sizes}
        if "correct" in queued:
            shares["correct"] = queued["correct"]
        summed = _packed(shares, _summed_over_processes)  # one all_reduce
        return {**summed, "loss": summed.pop("loss_sum") / summed["size"]}

    def epoch_loss(self) -> float:
        losses = self.history.step_loss[self.epoch_first_step :]
        return sum(v * n for v, n in zip(losses, self.epoch_sizes, strict=True)) / sum(self.epoch_sizes)

    def epoch_accuracy(self) -> float:
        return self.epoch_correct / (sum(self.epoch_sizes) * self.labels_per_sample)


class _BestWeights:
    """Early stopping's bookkeeping: the best validation loss, its epoch and its weights."""

    def __init__(self, patience: int | None) -> None:
        self.patience = patience
        self.loss = math.inf
        self.state: dict[str, Tensor] | None = None
        self.epochs_without_improvement = 0

    def update(self, model: nn.Module, history: History, epoch: int, val_loss: float) -> None:
        if val_loss < self.loss:
            self.loss = val_loss
            history.best_epoch = epoch
            self.epochs_without_improvement = 0
            if self.patience is not None:
                self.state = copy.deepcopy(model.state_dict())
        else:
            self.epochs_without_improvement += 1

    def should_stop(self) -> bool:
        return self.patience is not None and self.epochs_without_improvement >= self.patience

    def restore(self, model: nn.Module) -> None:
        if self.state is not None:
            model.load_state_dict(self.state)


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
    recorder = _StepRecorder(history, params, max_param_norm, loader.world_size, loader.y[0].numel())
    needs_closure = _needs_closure(optimizer)
    best = _BestWeights(early_stopping_patience)
    bar = _progress_bar(progress, epochs * len(loader))
    start = time.perf_counter()
    step = 0
    for epoch in range(epochs):
        model.train()
        recorder.start_epoch()
        for xb, yb in loader:
            if schedule is not None:
                set_lr(optimizer, schedule, step)
            history.step_lr.append(float(optimizer.param_groups[0]["lr"]))
            history.step_time.append(time.perf_counter() - start)

            output = model(xb)
            loss = loss_fn(output, yb)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            tensor_norms = _tensor_norms([p.grad for p in params if p.grad is not None], loss)
            optimizer.step(_closure(model, optimizer, loss_fn, xb, yb) if needs_closure else None)

            predicted = _predicted(output.detach(), yb) if classification else None
            recorder.add(loss, tensor_norms, xb.shape[0], predicted, yb)
            step += 1
            bar.update()
            if len(recorder) >= sync_every and (diverged := recorder.sync()) is not None:
                return _stop(history, diverged, on_divergence, bar, best, model, len(loader))
        if (diverged := recorder.sync()) is not None:
            return _stop(history, diverged, on_divergence, bar, best, model, len(loader))

        # ---- end of epoch: train and validation metrics, early stopping, callback
        if eval_train:
            loss_t, acc_t = _evaluate_on_host(model, loss_fn, loader.x, loader.y, eval_batch_size)
        else:
            loss_t, acc_t = recorder.epoch_loss(), recorder.epoch_accuracy() if classification else None
        history.epoch_train_loss.append(loss_t)
        if acc_t is not None:
            history.epoch_train_acc.append(acc_t)
        if val_data is not None:
            loss_v, acc_v = _evaluate_on_host(model, loss_fn, val_data[0], val_data[1], eval_batch_size)
            history.epoch_val_loss.append(loss_v)
            if acc_v is not None:
                history.epoch_val_acc.append(acc_v)
            best.update(model, history, epoch, loss_v)
        history.epoch_time.append(time.perf_counter() - start)
        if callback is not None:
            for key, value in (callback(model, epoch, history) or {}).items():
                history.records.setdefault(key, []).append(value)
        _show_epoch(bar, history)
        if best.should_stop():
            history.stopped_early = epoch < epochs - 1
            break

    bar.close()
    best.restore(model)
    return history


def _needs_closure(optimizer: torch.optim.Optimizer) -> bool:
    """Whether ``optimizer.step`` must be given a closure (``torch.optim.LBFGS``), which it
    calls to re-evaluate the loss; the others take the gradients already computed."""
    closure = inspect.signature(optimizer.step).parameters.get("closure")
    return closure is not None and closure.default is inspect.Parameter.empty


def _closure(
    model: nn.Module, optimizer: torch.optim.Optimizer, loss_fn: LossFn, xb: Tensor, yb: Tensor
) -> Callable[[], Tensor]:
    """The loss on this batch with fresh gradients, as a function the optimizer may call."""

    def closure() -> Tensor:
        optimizer.zero_grad(set_to_none=True)
        loss = loss_fn(model(xb), yb)
        loss.backward()
        return loss

    return closure


def _progress_bar(progress: bool | None, total: int) -> tqdm:
    progress_file = _progress_file(progress)
    return tqdm(
        total=total,
        file=progress_file,
        disable=progress_file is None,
        delay=0.0 if progress else PROGRESS_DELAY_S,
        leave=False,
        unit="step",
        dynamic_ncols=True,
    )


def _show_epoch(bar: tqdm, history: History) -> None:
    postfix = {"loss": f"{history.epoch_train_loss[-1]:.4g}"}
    if history.epoch_val_loss:
        postfix["val_loss"] = f"{history.epoch_val_loss[-1]:.4g}"
    bar.set_postfix(postfix, refresh=False)


def _stop(
    history: History,
    diverged: _Divergence,
    on_divergence: str,
    bar: tqdm,
    best: _BestWeights,
    model: nn.Module,
    steps_per_epoch: int,
) -> History:
    """End a diverged run: trim the step lists, restore the best weights, then raise or return."""
    step = diverged.step
    for name in ("step_loss", "step_lr", "step_grad_norm", "step_time"):
        del getattr(history, name)[step + 1 :]
    history.diverged = True
    history.diverged_step = step
    bar.close()
    best.restore(model)  # as at the normal end of an early-stopping run
    if on_divergence == "raise":
        lr = history.step_lr[step]
        raise DivergenceError(
            f"training diverged at step {step} (epoch {step // steps_per_epoch}) with learning rate "
            f"{lr:.4g}: {diverged.reason}. Lower the learning rate, or pass on_divergence='stop' to get "
            "the history up to this step",
            step,
            lr,
            history,
        )
    return history
