"""The README's local server: `jupyter lab` starts, headless, and serves the chapters.

Starts JupyterLab exactly as the README's "Read and run the notebooks" section does, from
the repository root, but without a browser, on a free port of 127.0.0.1 and with a token;
then asks its REST API for the folder of chapters and the page of the notebook interface.
"""

import json
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest

from scripts.book import CHAPTERS, ROOT, chapter_notebooks

pytestmark = pytest.mark.slow
STARTUP_SECONDS = 120


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def get(url: str, token: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    port, token = free_port(), secrets.token_hex(16)
    home = tmp_path_factory.mktemp("jupyter")
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(home / "config"),
        "JUPYTER_DATA_DIR": str(home / "data"),
        "JUPYTER_RUNTIME_DIR": str(home / "runtime"),
    }
    log = (home / "server.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}",
         "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}", "--allow-root"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while True:
            try:
                if get(f"{base}/api/status", token)[0] == 200:
                    break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                log.flush()
                pytest.fail(f"jupyter lab did not start: {(home / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield base, token
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def test_jupyterlab_lists_every_chapter(server):
    base, token = server
    status, body = get(f"{base}/api/contents/{CHAPTERS.relative_to(ROOT).as_posix()}", token)
    assert status == 200, body[:500]
    listed = {item["name"] for item in json.loads(body)["content"] if item["type"] == "notebook"}
    assert listed >= {path.name for path in chapter_notebooks()}


def test_jupyterlab_opens_a_chapter_and_serves_its_interface(server):
    base, token = server
    first = chapter_notebooks()[0].relative_to(ROOT).as_posix()
    status, body = get(f"{base}/api/contents/{first}", token)
    assert status == 200 and json.loads(body)["type"] == "notebook"
    status, page = get(f"{base}/lab/tree/{first}", token)
    assert status == 200 and b"JupyterLab" in page
    assert get(f"{base}/api/contents/chapters", "wrong-token")[0] == 403  # the token is required
