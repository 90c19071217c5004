"""Forking the book: one command moves every mention of the repository to a new URL."""

import shutil
import subprocess
import sys

import nbformat
import pytest
import yaml

from scripts.book import ROOT, repository

NEW_URL = "https://github.com/someone-else/their-fork"


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_set_repository_rewrites_config_setup_cells_and_mentions(tmp_path):
    if not (ROOT / ".git").exists():
        pytest.skip("this checkout is not a git repository, so there is nothing to clone")
    fork = tmp_path / "fork"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(fork)], check=True)
    old_url, _ = repository()

    run = subprocess.run(
        [sys.executable, "scripts/set_repository.py", NEW_URL, "--branch", "trunk"],
        cwd=fork,
        capture_output=True,
        text=True,
    )
    assert run.returncode == 0, run.stderr

    config = yaml.safe_load((fork / "_config.yml").read_text())
    assert config["repository"] == {"url": NEW_URL, "branch": "trunk", "path_to_book": ""}
    assert "someone-else/their-fork" in config["author"], config["author"]
    notebooks = sorted((fork / "chapters").glob("*.ipynb")) + sorted((fork / "reference").glob("*.ipynb"))
    assert notebooks
    for path in notebooks:
        setup = next(c for c in nbformat.read(path, as_version=4).cells if c.cell_type == "code")
        assert f'git+{NEW_URL}@trunk"' in setup.source, path.name
    old_name = old_url.removeprefix("https://github.com/")
    leftovers = subprocess.run(["git", "grep", "-l", old_name], cwd=fork, capture_output=True, text=True)
    assert leftovers.stdout.split() == [], f"files still naming {old_name}: {leftovers.stdout.split()}"


def test_set_repository_rejects_a_url_that_is_not_a_github_repository():
    run = subprocess.run(
        [sys.executable, "scripts/set_repository.py", "not-a-url"], cwd=ROOT, capture_output=True, text=True
    )
    assert run.returncode == 2
    assert "url must look like https://github.com/<owner>/<repo>" in run.stderr
