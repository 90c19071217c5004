"""lib.device: the device the book computes on (LIB_DEVICE overrides it) and one call to seed."""

import random

import numpy as np
import pytest
import torch

from lib import device


def test_preference_is_cuda_then_mps_then_cpu(monkeypatch):
    monkeypatch.delenv("LIB_DEVICE", raising=False)
    present = set()
    monkeypatch.setattr(device, "_available", lambda kind: kind == "cpu" or kind in present)
    assert device.get_device() == torch.device("cpu")
    present.add("mps")
    assert device.get_device() == torch.device("mps")
    present.add("cuda")
    assert device.get_device() == torch.device("cuda")


def test_lib_device_overrides_the_choice(monkeypatch):
    monkeypatch.setattr(device, "_available", lambda kind: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    for value, expected in (("cpu", "cpu"), (" cuda ", "cuda"), ("cuda:1", "cuda:1"), ("mps", "mps")):
        monkeypatch.setenv("LIB_DEVICE", value)
        assert device.get_device() == torch.device(expected)


@pytest.mark.parametrize("value", ["gpu", "cuda:x", "cpu:1", "mps:0", "cuda:-1", "cuda:"])
def test_lib_device_that_is_no_device_is_refused(monkeypatch, value):
    monkeypatch.setenv("LIB_DEVICE", value)
    with pytest.raises(ValueError, match=rf"^LIB_DEVICE='{value}' is not a device: use 'cpu'"):
        device.get_device()


def test_lib_device_this_machine_lacks_is_refused(monkeypatch):
    # cuda:N is checked against the number of GPUs: before, cuda:5 on a one-GPU machine was
    # returned and failed later, at the first tensor moved there
    monkeypatch.setattr(device, "_available", lambda kind: kind in ("cpu", "cuda"))
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setenv("LIB_DEVICE", "cuda:0")
    assert device.get_device() == torch.device("cuda", 0)
    monkeypatch.setenv("LIB_DEVICE", "cuda:5")
    with pytest.raises(RuntimeError, match=r"^LIB_DEVICE='cuda:5' but this machine has 1 CUDA device"):
        device.get_device()
    monkeypatch.setenv("LIB_DEVICE", "mps")
    with pytest.raises(RuntimeError, match=r"^LIB_DEVICE='mps' but this machine has no mps device"):
        device.get_device()


def test_seed_repeats_every_generator_and_checks_its_argument():
    def draw():
        return random.random(), np.random.rand(), torch.rand(2).tolist()

    device.seed(7)
    first = draw()
    device.seed(7)
    assert draw() == first
    device.seed(8)
    assert draw() != first
    with pytest.raises(ValueError, match=r"^seed must be an integer in \[0, 4294967295\], got -1$"):
        device.seed(-1)
