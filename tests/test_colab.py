"""The Colab path: the setup cell's install line installs `lib` from a git URL into a fresh Python.

A local clone of this repository stands in for the remote on GitHub. The fresh virtual
environment sees the packages of the current one (torch is large and Colab already has it)
but not this checkout, so `import lib` can only succeed through what the install step built.
"""

import json
import shutil
import site
import subprocess
import venv
from pathlib import Path

import nbformat
import pytest

import lib
from scripts.book import DISTRIBUTION, ROOT, book_notebooks, pip_install_target, repository

OWN_DISTRIBUTION = DISTRIBUTION.replace("-", "_")


def visible_packages(target: Path) -> Path:
    """A folder of links to the current site-packages, leaving out this repository's own `lib`."""
    target.mkdir()
    for folder in map(Path, site.getsitepackages()):
        for entry in folder.iterdir():
            own = OWN_DISTRIBUTION in entry.name or entry.name == "lib" or entry.suffix == ".pth"
            if not own and not (target / entry.name).exists():
                (target / entry.name).symlink_to(entry)
    return target


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_setup_cell_installs_lib_from_a_git_url(tmp_path):
    if not (ROOT / ".git").exists():
        pytest.skip("this checkout is not a git repository, so there is nothing to clone")
    remote = tmp_path / "remote"
    subprocess.run(["git", "clone", "--quiet", "--no-local", str(ROOT), str(remote)], check=True)

    setup_cell = next(
        c for c in nbformat.read(book_notebooks()[0], as_version=4).cells if c.cell_type == "code"
    )
    url, _ = repository()
    # file://localhost/... rather than file:///...: older pips reject a git URL without a host
    local_url = f"file://localhost{remote}"
    requirement = pip_install_target(setup_cell.source).replace(url, local_url)
    assert local_url in requirement, requirement

    env_dir = tmp_path / "fresh"
    try:
        venv.create(env_dir)  # pip comes from the current environment, as recent as Colab's
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"cannot create a virtual environment here: {error}")
    python = env_dir / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    Path(purelib, "_current_packages.pth").write_text(f"{visible_packages(tmp_path / 'current')}\n")

    clean_env = {
        "PATH": f"{env_dir / 'bin'}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    absent = subprocess.run([python, "-c", "import lib"], cwd=tmp_path, env=clean_env, capture_output=True)
    assert absent.returncode != 0, "lib is importable before the install step: the test would prove nothing"

    install = subprocess.run(
        [python, "-m", "pip", "install", "-q", requirement],
        cwd=tmp_path,
        env=clean_env,
        capture_output=True,
        text=True,
    )
    assert install.returncode == 0, install.stderr[-3000:]

    probe = (
        "import json, pathlib, lib; lib.seed(0); lib.get_device(); "
        "root = pathlib.Path(lib.__file__).parent; "
        "modules = sorted(str(p.relative_to(root)) for p in root.rglob('*.py')); "
        "print(json.dumps([str(root), lib.__version__, modules]))"
    )
    run = subprocess.run([python, "-c", probe], cwd=tmp_path, env=clean_env, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    installed_at, version, modules = json.loads(run.stdout)
    assert Path(installed_at).is_relative_to(env_dir), (
        f"lib was imported from {installed_at}, not the fresh install"
    )
    assert version == lib.__version__
    committed = subprocess.run(
        ["git", "ls-files", "lib"], cwd=remote, capture_output=True, text=True
    ).stdout.split()
    expected = sorted(str(Path(p).relative_to("lib")) for p in committed if p.endswith(".py"))
    assert modules == expected, "the installed package lacks modules of the repository's lib/"
