"""The whole book as one PDF, built offline with what the machine has: Sphinx and headless Chromium.

Usage:
    python scripts/pdf.py                         # into _build/pdf/why-training-fails.pdf
    python scripts/pdf.py --path-output /tmp/out  # into /tmp/out/_build/pdf/, as jupyter-book does

1. ``jupyter-book build . --builder singlehtml``: the whole book as one HTML page, with MathJax
   served from the page's own folder (``_ext/local_mathjax.py``).
2. The page is served on 127.0.0.1 and opened in headless Chromium (``scripts/browser.py``;
   every other host is unreachable); the script waits until MathJax has typeset every formula
   and every figure has loaded.
3. Chromium prints it (``Page.printToPDF``): A4, page numbers in the footer, a bookmark per
   heading, the fonts embedded.

Then ``jupyter-book build .`` copies the PDF into the site and links it from the front page
(``_ext/book_release.py``); without a PDF the front page shows no link. Run this script
again after changing the book: the site links whatever PDF it finds in ``_build/pdf``.
"""

import argparse
import functools
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from scripts.book import ROOT  # noqa: E402
from scripts.browser import CHROMIUM, LOAD_SECONDS, SETTLED, Browser  # noqa: E402

PDF_NAME = "why-training-fails.pdf"
# A4 in inches, as Page.printToPDF takes it; margins leave room for the page number.
PAPER = {"paperWidth": 8.27, "paperHeight": 11.69}
MARGINS = {"marginTop": 0.6, "marginBottom": 0.7, "marginLeft": 0.6, "marginRight": 0.6}
FOOTER = (
    '<div style="font: 8px sans-serif; color: #555; width: 100%; text-align: center;">'
    '<span class="pageNumber"></span> / <span class="totalPages"></span></div>'
)

# Paper cannot scroll or be clicked: the site's navigation goes, long lines wrap, solutions
# and folded cells open, and a figure or short cell is not split across two pages.
PRINT_CSS = """
@media print {
  .bd-header, .bd-sidebar-primary, .bd-sidebar-secondary, .bd-header-article, .header-article,
  .prev-next-area, .bd-footer, .bd-footer-article, .bd-footer-content, .search-button,
  .theme-switch-button, .copybtn, .toggle-details__summary, button.toggle-button,
  .headerlink, .skip-link, .bd-search, #pst-back-to-top { display: none !important; }
  .bd-main .bd-content .bd-article-container { max-width: 100% !important; }
  .bd-page-width, .bd-container__inner { max-width: 100% !important; }
  pre, .output pre, .cell_output pre { white-space: pre-wrap !important; overflow-wrap: anywhere; }
  img, figure, .cell_output, mjx-container[display="true"] { break-inside: avoid; }
  h1, h2, h3 { break-after: avoid; }
  section > h1 { break-before: page; }
}
"""

# Before printing: apply PRINT_CSS and open every fold (SETTLED then loads the lazy images).
PREPARE = """
(async () => {
  const style = document.createElement("style");
  style.textContent = PRINT_CSS;
  document.head.appendChild(style);
  document.documentElement.dataset.theme = "light";
  document.documentElement.dataset.mode = "light";
  for (const fold of document.querySelectorAll("details")) fold.open = true;
  for (const el of document.querySelectorAll(".toggle-hidden, .toggle-details .toggle-hidden"))
    el.classList.remove("toggle-hidden");
  return true;
})()
""".replace("PRINT_CSS", repr(PRINT_CSS))


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


def build_single_page(path_output: Path) -> Path:
    """The book as one HTML page (``singlehtml``); return its folder."""
    command = ["jupyter-book", "build", str(ROOT), "--builder", "singlehtml"]
    command += ["--path-output", str(path_output)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"the single-page build failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}")
    return path_output / "_build" / "singlehtml"


def print_pdf(site: Path, target: Path) -> int:
    """Print ``site``'s single page to ``target`` with headless Chromium; return its size in bytes."""
    if CHROMIUM is None:
        raise RuntimeError("Chromium is not installed (apt-get install chromium)")
    handler = functools.partial(QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.TemporaryDirectory() as profile:
        browser = Browser(CHROMIUM, Path(profile))
        try:
            session = browser.new_page()
            browser.send("Emulation.setEmulatedMedia", session=session, media="print")
            browser.open(session, f"http://127.0.0.1:{server.server_port}/intro.html", 800)
            browser.evaluate(session, PREPARE)
            browser.evaluate(session, SETTLED)  # math typeset, every image loaded
            pdf = browser.print_pdf(
                session,
                timeout=LOAD_SECONDS,
                printBackground=True,
                displayHeaderFooter=True,
                headerTemplate="<span></span>",
                footerTemplate=FOOTER,
                generateDocumentOutline=True,
                **PAPER,
                **MARGINS,
            )
        finally:
            browser.close()
            server.shutdown()
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(pdf)
    return len(pdf)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--path-output",
        type=Path,
        default=ROOT,
        help="folder whose _build/ receives the single page and the PDF (default: the book's root)",
    )
    args = parser.parse_args()
    start = time.perf_counter()
    site = build_single_page(args.path_output.resolve())
    built = time.perf_counter()
    target = args.path_output.resolve() / "_build" / "pdf" / PDF_NAME
    size = print_pdf(site, target)
    done = time.perf_counter()
    print(
        f"{target}: {size / 1e6:.1f} MB (single page built in {built - start:.0f} s, "
        f"printed in {done - built:.0f} s)"
    )


if __name__ == "__main__":
    main()
