"""The built site in a real browser: math typeset, assets found, Colab links and API page right.

Builds the book the way the README and CI do (`jupyter-book build . -W -n --keep-going`,
into a temporary folder), serves it on 127.0.0.1, and opens every page in headless Chromium
(Debian's package). Skipped with a reason when Chromium is not installed; CI installs it.
"""

import functools
import importlib
import re
import shutil
import subprocess
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

import lib
from scripts.book import ROOT, repository

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--virtual-time-budget=15000", "--dump-dom",
]  # fmt: skip
BROWSER_PROBES = {"/favicon.ico"}  # asked for by the browser itself, not by any page

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)"
)


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp("site")
    build = subprocess.run(
        ["jupyter-book", "build", str(ROOT), "--path-output", str(out), "-W", "-n", "--keep-going"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert build.returncode == 0, build.stdout[-4000:] + build.stderr[-4000:]
    return out / "_build" / "html"


class RecordingHandler(SimpleHTTPRequestHandler):
    requests: list

    def log_request(self, code="-", size="-"):
        self.requests.append((self.path.split("?")[0], int(code)))


@pytest.fixture(scope="module")
def browsed(site, tmp_path_factory):
    """Every page as the browser's DOM after scripts ran, and every request the pages made."""
    requests = []
    handler = functools.partial(
        type("Handler", (RecordingHandler,), {"requests": requests}), directory=str(site)
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    profile = tmp_path_factory.mktemp("chromium-profile")
    pages = sorted(p for p in site.rglob("*.html") if not {"_static", "_sources"} & set(p.parts))
    doms = {}
    try:
        for page in pages:
            url = f"http://127.0.0.1:{server.server_port}/{page.relative_to(site)}"
            run = subprocess.run(
                [CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", url],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert run.returncode == 0, run.stderr[-2000:]
            doms[page.relative_to(site).as_posix()] = run.stdout
    finally:
        server.shutdown()
    return doms, requests


def visible_text(dom: str) -> str:
    """The DOM without scripts, styles and code blocks, where `$` and `\\[` are legitimate."""
    return re.sub(r"(?s)<(script|style|pre|code|textarea)\b.*?</\1>", "", dom)


def test_every_page_was_opened(site, browsed):
    doms, _ = browsed
    assert "intro.html" in doms and any(name.startswith("chapters/") for name in doms)
    assert all("</html>" in dom for dom in doms.values())


def test_mathjax_typeset_every_formula(site, browsed):
    doms, _ = browsed
    pages_with_math = [name for name in doms if 'class="math notranslate' in (site / name).read_text()]
    assert pages_with_math, "no page has math: the check below would prove nothing"
    for name in pages_with_math:
        text = visible_text(doms[name])
        assert "<mjx-container" in doms[name], f"{name}: MathJax did not typeset"
        raw = re.findall(r"\$\$|\\\[|\\\(", text)
        assert raw == [], f"{name}: raw math left on the page: {raw[:5]}"


def test_every_local_asset_loads(site, browsed):
    doms, requests = browsed
    failed = sorted({(path, code) for path, code in requests if code >= 400 and path not in BROWSER_PROBES})
    assert failed == [], f"requests that failed: {failed}"
    loaded = {path for path, code in requests if code == 200}
    for name in doms:
        page_dir = Path("/" + name).parent
        for src in re.findall(r'<img[^>]+src="([^":]+)"', (site / name).read_text()):
            path = (page_dir / src).resolve().as_posix()
            assert path in loaded, f"{name}: image {src} was never loaded"


def test_every_notebook_page_links_to_colab(site, browsed):
    doms, _ = browsed
    url, branch = repository()
    org_repo = url.removeprefix("https://github.com/")
    pattern = re.compile(
        rf'href="https://colab\.research\.google\.com/github/{re.escape(org_repo)}/blob/{branch}/([^"]+\.ipynb)"'
    )
    notebooks = [name for name in doms if (ROOT / name).with_suffix(".ipynb").exists()]
    assert any(name.startswith("chapters/") for name in notebooks)
    for name in notebooks:
        links = set(pattern.findall(doms[name]))
        assert links == {name.replace(".html", ".ipynb")}, f"{name}: Colab links {links}"
        assert all((ROOT / link).exists() for link in links)


def public_api() -> list[str]:
    names = []
    for module_name in lib.SUBMODULES:
        if not any((ROOT / "lib" / f).exists() for f in (f"{module_name}.py", f"{module_name}/__init__.py")):
            continue
        module = importlib.import_module(f"lib.{module_name}")
        defined_here = [
            name
            for name, obj in vars(module).items()
            if callable(obj) and getattr(obj, "__module__", None) == module.__name__
        ]
        public = getattr(module, "__all__", None) or [
            name for name in defined_here if not name.startswith("_")
        ]
        names += [f"lib.{module_name}.{name}" for name in public]
    return names


def test_api_page_lists_every_public_function(site, browsed):
    doms, _ = browsed
    api = doms["api.html"]
    names = public_api()
    assert "lib.device.get_device" in names
    missing = [name for name in names if f'id="{name}"' not in api]
    assert missing == [], f"the API reference lacks: {missing}"
