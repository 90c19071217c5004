"""lib.theory: the threshold task against brute force and its exact risk."""

import pytest
import torch

from lib import theory


def test_threshold_errors_match_brute_force_and_the_exact_risk():
    sample = theory.make_threshold_data(50, threshold=0.3, label_noise=0.2, seed=0)
    grid = theory.threshold_grid(11)
    errors = theory.threshold_errors(grid, sample)
    brute = [
        sum(int(float(x) >= float(t)) != int(y) for x, y in zip(*sample, strict=True)) / 50 for t in grid
    ]
    torch.testing.assert_close(errors, torch.tensor(brute))
    large = theory.make_threshold_data(200_000, threshold=0.3, label_noise=0.2, seed=1)
    empirical = theory.threshold_errors(grid, large)
    torch.testing.assert_close(empirical, theory.threshold_true_error(grid, 0.3, 0.2), atol=0.005, rtol=0)
    clean = theory.make_threshold_data(1000, threshold=0.3, seed=2)
    assert torch.equal(clean.y, (clean.x >= 0.3).long())


def test_threshold_arguments_are_checked():
    with pytest.raises(ValueError, match=r"label_noise must be a finite number in \[0, 0.5\)"):
        theory.make_threshold_data(10, label_noise=0.5)
    with pytest.raises(ValueError, match=r"threshold must be a finite number in \[0, 1\]"):
        theory.make_threshold_data(10, threshold=1.5)
    with pytest.raises(ValueError, match="size must be an integer >= 2"):
        theory.threshold_grid(1)
    with pytest.raises(ValueError, match="thresholds must have shape"):
        theory.threshold_errors(torch.zeros(3, 1), theory.make_threshold_data(5))
    with pytest.raises(ValueError, match="thresholds are on meta"):
        theory.threshold_errors(torch.zeros(3, device="meta"), theory.make_threshold_data(5))
