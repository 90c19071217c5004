"""Headless Chromium driven through the DevTools protocol over a pipe: no driver, no extra package.

Used by the site's browser test (`tests/test_site.py`) and by the book's PDF (`scripts/pdf.py`).
Chromium is Debian's package (`apt-get install chromium`); every host but 127.0.0.1 is
unreachable for it, so a page that needs the network fails instead of fetching.
"""

import base64
import json
import os
import shutil
import subprocess
import threading
from pathlib import Path

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-extensions", "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
    # every host but the test's own server is unreachable: a page that needs the network fails
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]  # fmt: skip
LOAD_SECONDS = 300  # generous: the machine may be busy

# Resolves once MathJax has typeset the page and every image has loaded (or failed).
SETTLED = """
(async () => {
  if (window.MathJax && MathJax.startup && MathJax.startup.promise) { await MathJax.startup.promise; }
  // images load lazily as a reader scrolls; a check of the whole page loads them all now
  document.querySelectorAll('img[loading="lazy"]').forEach(i => { i.loading = "eager"; });
  await Promise.all([...document.images].map(i => i.complete ? null :
    new Promise(r => { i.addEventListener("load", r); i.addEventListener("error", r); })));
  await new Promise(r => setTimeout(r, 50));
  return true;
})()
"""


class Browser:
    """Headless Chromium driven through the DevTools protocol over a pipe.

    Chromium reads commands from file descriptor 3 and writes replies and events to 4, each
    message a JSON object ended by a NUL byte (``--remote-debugging-pipe``).
    """

    def __init__(self, binary: str, profile: Path) -> None:
        to_browser_read, self._write = os.pipe()
        self._read, from_browser_write = os.pipe()

        def wire() -> None:  # in the child, before exec: the pipes become fds 3 and 4
            read, write = os.dup(to_browser_read), os.dup(from_browser_write)
            os.dup2(read, 3)
            os.dup2(write, 4)

        self.process = subprocess.Popen(
            [binary, *CHROMIUM_FLAGS, "--remote-debugging-pipe", f"--user-data-dir={profile}", "about:blank"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=wire,
            close_fds=False,
        )
        os.close(to_browser_read)
        os.close(from_browser_write)
        self._next_id = 0
        self._replies: dict[int, dict] = {}
        self.events: list[dict] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._receive, daemon=True).start()

    def _receive(self) -> None:
        pending = b""
        while chunk := os.read(self._read, 1 << 16):
            pending += chunk
            *messages, pending = pending.split(b"\0")
            with self._changed:
                for raw in messages:
                    message = json.loads(raw)
                    if "id" in message:
                        self._replies[message["id"]] = message
                    else:
                        self.events.append(message)
                self._changed.notify_all()

    def send(self, method: str, session: str | None = None, timeout: float = 60, **params) -> dict:
        self._next_id += 1
        ident = self._next_id
        message = {"id": ident, "method": method, "params": params}
        if session is not None:
            message["sessionId"] = session
        os.write(self._write, json.dumps(message).encode() + b"\0")
        with self._changed:
            if not self._changed.wait_for(lambda: ident in self._replies, timeout):
                raise TimeoutError(f"Chromium did not answer {method} within {timeout} s")
            reply = self._replies.pop(ident)
        if "error" in reply:
            raise RuntimeError(f"{method}: {reply['error']}")
        return reply["result"]

    def wait_for_event(self, method: str, session: str, since: int, timeout: float = 60) -> dict:
        def found():
            return next(
                (e for e in self.events[since:] if e["method"] == method and e.get("sessionId") == session),
                None,
            )

        with self._changed:
            if not self._changed.wait_for(found, timeout):
                raise TimeoutError(f"no {method} within {timeout} s")
            return found()

    def new_page(self) -> str:
        target = self.send("Target.createTarget", url="about:blank")["targetId"]
        session = self.send("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        for domain in ("Page", "Network", "Runtime"):
            self.send(f"{domain}.enable", session=session)
        return session

    def open(self, session: str, url: str, width: int) -> list[str]:
        """Load ``url`` at ``width`` CSS pixels, wait for math and images; return the URLs it requested."""
        self.send(
            "Emulation.setDeviceMetricsOverride",
            session=session, width=width, height=900, deviceScaleFactor=1, mobile=width < 600,
        )  # fmt: skip
        since = len(self.events)
        self.send("Page.navigate", session=session, url=url)
        self.wait_for_event("Page.loadEventFired", session, since, timeout=LOAD_SECONDS)
        self.evaluate(session, SETTLED)
        return [
            e["params"]["request"]["url"]
            for e in self.events[since:]
            if e["method"] == "Network.requestWillBeSent" and e.get("sessionId") == session
        ]

    def evaluate(self, session: str, expression: str):
        result = self.send(
            "Runtime.evaluate", session=session, expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def print_pdf(self, session: str, timeout: float = LOAD_SECONDS, **options) -> bytes:
        """The open page printed as a PDF (``Page.printToPDF`` with ``options``), read back as a stream."""
        stream = self.send(
            "Page.printToPDF", session=session, timeout=timeout, transferMode="ReturnAsStream", **options
        )["stream"]
        chunks = []
        while True:
            chunk = self.send("IO.read", session=session, handle=stream, size=1 << 20)
            chunks.append(
                base64.b64decode(chunk["data"]) if chunk.get("base64Encoded") else chunk["data"].encode()
            )
            if chunk.get("eof"):
                break
        self.send("IO.close", session=session, handle=stream)
        return b"".join(chunks)

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=10)
            self.process.wait(timeout=30)
        except (TimeoutError, RuntimeError, OSError, subprocess.TimeoutExpired):
            self.process.kill()
            self.process.wait()
