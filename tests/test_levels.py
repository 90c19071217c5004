"""The two check levels of the notebooks, and the portable numeric mode they rest on.

The end-to-end tests execute a small notebook as `scripts/execute.py` does, then run
`pytest` on it in a fresh process: an output edited by hand fails at the reproduce level and
passes at the claims level; a false assert fails at both; a notebook stored on another
platform is checked at the claims level without being asked.
"""

import json
import os
import re
import subprocess
import sys

import nbformat
import pytest

from lib import numerics
from scripts import levels
from scripts.book import PLATFORM_KEY, ROOT, execution_env, execution_platform, platform_of, varied_env
from scripts.execute import check_claims, compare, execute, glued_values, relative_difference


class Options:
    """A stand-in for pytest's config: ``getoption('book_level')`` and ``rootpath``."""

    def __init__(self, level):
        self.level = level
        self.rootpath = ROOT

    def getoption(self, name):
        assert name == "book_level"
        return self.level


def notebook(path, platform, cells):
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    if platform is not None:
        nb.metadata[PLATFORM_KEY] = platform
    nbformat.write(nb, path)
    return path


def test_a_notebook_on_its_own_platform_is_reproduced(tmp_path):
    path = notebook(tmp_path / "same.ipynb", execution_platform(), ["1"])
    assert levels.notebook_level(Options("auto"), path) == ("reproduce", "platform equals the stored one")


def test_a_notebook_from_another_platform_has_its_claims_checked_and_says_why(tmp_path):
    path = notebook(tmp_path / "other.ipynb", {**execution_platform(), "torch CPU kernels": "AVX512"}, ["1"])
    level, reason = levels.notebook_level(Options("auto"), path)
    here = execution_platform()["torch CPU kernels"]
    assert (level, reason) == (
        "claims",
        f"platform differs from the stored one: torch CPU kernels: AVX512 -> {here}",
    )


def test_a_notebook_without_a_record_has_its_claims_checked(tmp_path):
    path = notebook(tmp_path / "bare.ipynb", None, ["1"])
    level, reason = levels.notebook_level(Options("auto"), path)
    assert level == "claims" and "no platform recorded" in reason


@pytest.mark.parametrize("forced", ["reproduce", "claims"])
def test_the_flag_forces_a_level_for_every_notebook(tmp_path, forced):
    same = notebook(tmp_path / "same.ipynb", execution_platform(), ["1"])
    other = notebook(tmp_path / "other.ipynb", {"torch": "0.0"}, ["1"])
    level, reason = levels.notebook_level(Options(forced), same)
    assert (level, reason) == (forced, f"forced by --book-level {forced} (platform equals the stored one)")
    level, reason = levels.notebook_level(Options(forced), other)
    assert level == forced and reason.startswith(f"forced by --book-level {forced} (platform differs")


def test_every_book_notebook_records_the_platform_of_its_outputs():
    from scripts.book import book_notebooks

    for path in book_notebooks():
        record = nbformat.read(path, as_version=4).metadata.get(PLATFORM_KEY, {})
        assert set(record) >= {"machine", "torch", "torch CPU kernels", "threads", "device"}, (
            f"{path.name} stores no platform record: re-execute it with scripts/execute.py"
        )


def test_differences_name_each_entry_that_changed():
    stored = {"torch": "2.13.0", "threads": "2", "device": "cpu"}
    here = {"torch": "2.13.0", "threads": "4", "GPU": "H100"}
    assert numerics.differences(stored, here) == [
        "GPU: not recorded -> H100",
        "device: cpu -> not recorded",
        "threads: 2 -> 4",
    ]
    assert numerics.differences(stored, dict(stored)) == []


def test_portable_env_pins_threads_everywhere_and_avx2_only_where_the_cpu_has_it():
    env = numerics.portable_env()
    for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        assert env[name] == str(numerics.PORTABLE_THREADS)
    assert ("ATEN_CPU_CAPABILITY" in env) == numerics._has_avx2()


def run_python(code, env):
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return result.stdout.strip()


def unpinned_env(**values):
    """This process's environment without the portable mode's variables, plus ``values``."""
    return {**{k: v for k, v in os.environ.items() if k not in numerics.portable_env()}, **values}


def test_importing_lib_pins_the_kernels_before_torch_loads():
    if not numerics._has_avx2():
        pytest.skip("this CPU has no AVX2: the portable mode only pins the thread count here")
    code = "import lib, torch; print(torch.backends.cpu.get_cpu_capability(), torch.get_num_threads())"
    assert run_python(code, unpinned_env()) == f"AVX2 {numerics.PORTABLE_THREADS}"


def test_the_thread_count_the_reader_set_is_kept_for_every_library():
    code = "import lib, os, torch; print(torch.get_num_threads(), os.environ['OPENBLAS_NUM_THREADS'])"
    assert run_python(code, unpinned_env(OMP_NUM_THREADS="1")) == "1 1"


def test_platform_record_is_flat_text_and_names_what_decides_outputs():
    record = json.loads(
        run_python("import json, lib; print(json.dumps(lib.numerics.platform_record()))", execution_env())
    )
    assert record == execution_platform()
    assert all(isinstance(v, str) for v in record.values())
    assert record["threads"] == str(numerics.PORTABLE_THREADS)


@pytest.mark.parametrize(
    ("stored", "here", "expected"),
    [
        ("0.0912-0.14", "0.0912-0.14", 0.0),
        ("0.0912-0.14", "0.0912-0.2", 0.3),
        ("1,197 images", "1,200 images", 3 / 1200),
        ("-3e-05", "-4e-05", 0.25),
        ("x1.56", "x1.60", 0.04 / 1.6),
        ("inf", "0.5", float("inf")),
        ("3 of 3 seeds", "3 of 4 seeds", 0.25),
    ],
)
def test_relative_difference_of_quoted_numbers(stored, here, expected):
    assert relative_difference(stored, here) == pytest.approx(expected)


# A small notebook whose printed number depends on the CPU kernels (a 256 x 256 product),
# which glues a value and checks a claim.
CELLS = [
    "import lib\n\nlib.seed(0)\nimport torch",
    "a, b = torch.randn(256, 256), torch.randn(256, 256)\nprint(f'{(a @ b).sum().item():.9e}')",
    "lib.glue('mean', (a @ b).abs().mean().item(), '.6f')\n"
    "assert (a @ b).abs().mean() > 1, 'products of unit normals'",
]


def run_pytest(path, *args):
    """`pytest` on one notebook in a fresh process, with the book's levels plugin."""
    conftest = f"import sys\nsys.path.insert(0, {str(ROOT)!r})\npytest_plugins = ['scripts.levels']\n"
    (path.parent / "conftest.py").write_text(conftest)
    (path.parent / "pytest.ini").write_text("[pytest]\n")
    command = [sys.executable, "-m", "pytest", "--nbval", "--nbval-current-env", "-p", "no:cacheprovider"]
    result = subprocess.run(
        [*command, "-p", "no:xdist", *args, path.name],
        cwd=path.parent,
        env=execution_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)  # no colours


@pytest.fixture
def executed(tmp_path):
    path = notebook(tmp_path / "small.ipynb", None, CELLS)
    execute(path)
    return path


def edit(path, cell, change):
    nb = nbformat.read(path, as_version=4)
    change(nb.cells[cell])
    nbformat.write(nb, path)


@pytest.mark.slow
def test_reproduce_fails_on_an_output_edited_by_hand_and_claims_does_not(executed):
    stored = nbformat.read(executed, as_version=4)
    assert stored.metadata[PLATFORM_KEY] == execution_platform()
    assert float(glued_values(stored)["mean"]) > 1
    code, out = run_pytest(executed)
    assert code == 0, out
    assert "REPRODUCE for small.ipynb: platform equals the stored one" in out

    def change_last_digit(cell):
        text = cell.outputs[0].text
        cell.outputs[0].text = text[:-6] + str((int(text[-6]) + 1) % 10) + text[-5:]

    edit(executed, 1, change_last_digit)
    code, out = run_pytest(executed)
    assert code != 0 and "Cell outputs differ" in out, out
    code, out = run_pytest(executed, "--book-level", "claims")
    assert code == 0, out
    assert "CLAIMS for small.ipynb: forced by --book-level claims (platform equals the stored one)" in out


@pytest.mark.slow
def test_a_false_claim_fails_at_both_levels(executed):
    def break_the_claim(cell):
        cell.source = cell.source.replace("> 1", "> 100")

    edit(executed, 2, break_the_claim)
    for level in ("reproduce", "claims"):
        code, out = run_pytest(executed, "--book-level", level)
        assert code != 0 and "AssertionError: products of unit normals" in out, (level, out)


@pytest.mark.slow
def test_a_notebook_stored_elsewhere_is_checked_at_the_claims_level(executed):
    def from_elsewhere(cell):
        cell.outputs[0].text = "a number printed on another machine\n"

    edit(executed, 1, from_elsewhere)
    nb = nbformat.read(executed, as_version=4)
    nb.metadata[PLATFORM_KEY] = {**nb.metadata[PLATFORM_KEY], "torch CPU kernels": "AVX512"}
    nbformat.write(nb, executed)
    code, out = run_pytest(executed)
    assert code == 0, out
    assert "CLAIMS for small.ipynb: platform differs from the stored one: torch CPU kernels: AVX512" in out


@pytest.mark.slow
def test_compare_prints_each_glued_value_stored_against_here(executed):
    _, lines, failures = compare(executed)
    assert failures == []
    mean = glued_values(nbformat.read(executed, as_version=4))["mean"]
    assert lines[0] == "platform, stored -> here: the same"
    assert lines[2].split() == ["mean", mean, mean, "0"]
    assert lines[-1] == "0 of 1 glued values differ; largest relative difference 0 (mean)"


@pytest.mark.slow
def test_claims_run_with_one_thread_and_each_librarys_own_kernels(executed):
    env = varied_env(threads=1, native_kernels=True)
    record = platform_of(env)
    assert record["threads"] == "1"
    _, _, failures = check_claims(executed, env=env)
    assert failures == []
