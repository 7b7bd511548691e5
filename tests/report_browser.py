"""Open a page in headless Chromium and say what went wrong in it: the check behind tests/test_report.py.

The driver is the Chrome DevTools Protocol over `--remote-debugging-pipe` (file descriptors 3 and 4,
JSON messages ended by a NUL byte), so it needs nothing but the standard library and the browser
binary: no websocket package, no Playwright or Selenium and no browser download. It fails a page on
an uncaught JavaScript exception, a console error, anything Chromium logs as an error (a resource that
would not load: a CDN script offline), and an <img> that did not decode (naturalWidth 0); it can
then click an element and ask the page a question, and saves a full-page screenshot.

As a script: `python tests/report_browser.py PAGE.html SHOT.png` prints the problems as JSON.
"""

from __future__ import annotations

import fcntl
import json
import os
import queue
import shutil
import subprocess
import tempfile
import threading
from pathlib import Path

CANDIDATES = (os.environ.get("TINYLM_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
              shutil.which("chromium-browser"), shutil.which("google-chrome"))
CHROMIUM = next((p for p in CANDIDATES if p and Path(p).is_file()), None)
BROKEN_IMAGES = ("JSON.stringify(Array.from(document.images).filter(i => !i.complete || i.naturalWidth === 0)"
                 ".map(i => i.alt || i.src.slice(0, 80)))")


class Chromium:
    """One headless browser; `call(method, **params)` sends a command to the attached page."""

    def __init__(self, timeout: float = 30.0):
        self.timeout, self.next_id, self.events, self.enabled = timeout, 0, [], False
        self.profile = tempfile.TemporaryDirectory(prefix="tinylm-chromium-")
        to_child, self.to_browser = os.pipe()
        self.from_browser, to_parent = os.pipe()

        def as_fds_3_and_4():  # the pipe's ends where Chromium expects them (moved above 10 first: no clash)
            a, b = fcntl.fcntl(to_child, fcntl.F_DUPFD, 10), fcntl.fcntl(to_parent, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)

        flags = ["--headless", "--remote-debugging-pipe", "--disable-gpu", "--no-first-run",
                 "--no-default-browser-check", "--disable-extensions", "--hide-scrollbars",
                 f"--user-data-dir={self.profile.name}"] + (["--no-sandbox"] if os.geteuid() == 0 else [])
        self.process = subprocess.Popen([CHROMIUM, *flags, "about:blank"], preexec_fn=as_fds_3_and_4, pass_fds=(3, 4),
                                        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        os.close(to_child)
        os.close(to_parent)
        self.inbox: queue.Queue = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        target = self.call("Target.createTarget", url="about:blank", session=False)["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target, flatten=True, session=False)["sessionId"]

    def _read(self) -> None:
        buffer = b""
        while chunk := os.read(self.from_browser, 1 << 16):
            buffer += chunk
            *messages, buffer = buffer.split(b"\0")
            for message in messages:
                self.inbox.put(json.loads(message))
        self.inbox.put(None)

    def _next(self) -> dict:
        message = self.inbox.get(timeout=self.timeout)
        if message is None:
            raise RuntimeError("Chromium closed its pipe (it crashed or could not start)")
        if "method" in message:
            self.events.append(message)
        return message

    def call(self, method: str, session: bool = True, **params) -> dict:
        self.next_id += 1
        message = {"id": self.next_id, "method": method, "params": params}
        if session:
            message["sessionId"] = self.session
        os.write(self.to_browser, json.dumps(message).encode() + b"\0")
        while True:
            reply = self._next()
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def wait_for(self, method: str) -> dict:
        for event in self.events:
            if event["method"] == method:
                return event
        while True:
            message = self._next()
            if message.get("method") == method:
                return message

    def evaluate(self, expression: str):
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails'].get('text')}")
        return result["result"].get("value")

    def close(self) -> None:
        try:
            self.call("Browser.close", session=False)
        except Exception:  # noqa: BLE001 - closing anyway
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.to_browser)
        self.profile.cleanup()


def problems(browser: Chromium) -> list[str]:
    """Every error the page reported so far, one line each."""
    out = []
    for event in browser.events:
        method, params = event["method"], event.get("params", {})
        if method == "Runtime.exceptionThrown":
            details = params.get("exceptionDetails", {})
            thrown = details.get("exception", {}).get("description") or details.get("text")
            out.append(f"JavaScript exception: {thrown}")
        elif method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
            out.append("console error: " + " ".join(str(a.get("value", a.get("description"))) for a in params["args"]))
        elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
            entry = params["entry"]
            out.append(f"browser error ({entry.get('source')}): {entry.get('text')} {entry.get('url', '')}".strip())
    return out


def check_page(browser: Chromium, page: Path, screenshot: Path | None = None, width: int = 1200,
               script: str | None = None) -> dict:
    """Load `page` in `browser`; run `script` (an expression) once it loaded; return {problems (of this page
    alone), broken_images, value}; save a full-page screenshot if asked."""
    browser.events.clear()
    if not browser.enabled:
        for domain in ("Runtime", "Log", "Page"):
            browser.call(f"{domain}.enable")
        browser.enabled = True
    browser.call("Emulation.setDeviceMetricsOverride", width=width, height=900, deviceScaleFactor=1, mobile=False)
    browser.call("Page.navigate", url=Path(page).resolve().as_uri())
    browser.wait_for("Page.loadEventFired")
    broken = json.loads(browser.evaluate(BROKEN_IMAGES))
    value = browser.evaluate(script) if script else None
    if screenshot is not None:
        import base64

        height = int(browser.call("Page.getLayoutMetrics")["cssContentSize"]["height"]) + 1
        browser.call("Emulation.setDeviceMetricsOverride", width=width, height=height, deviceScaleFactor=1,
                     mobile=False)
        shot = browser.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
        Path(screenshot).write_bytes(base64.b64decode(shot["data"]))
    return {"problems": problems(browser), "broken_images": broken, "value": value}


if __name__ == "__main__":
    import sys

    chromium = Chromium()
    try:
        print(json.dumps(check_page(chromium, Path(sys.argv[1]), Path(sys.argv[2]) if len(sys.argv) > 2 else None),
                         indent=1))
    finally:
        chromium.close()
