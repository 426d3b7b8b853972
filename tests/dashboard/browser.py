"""Debian's chromium, headless, driven over the DevTools protocol (a websocket, through aiohttp).

No browser-automation package needed: the protocol is JSON over a websocket, and only four
calls are used (navigate, evaluate, set the window size, screenshot).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--hide-scrollbars", "--remote-debugging-port=0", "--window-size=1400,1000"]
START_TIMEOUT_S = 30.0


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    def __init__(self, binary: str, profile_dir: Path):
        self.binary = binary
        self.profile_dir = profile_dir
        self._ids = itertools.count(1)
        self._process: subprocess.Popen[bytes] | None = None
        self._http: aiohttp.ClientSession | None = None
        self._socket: aiohttp.ClientWebSocketResponse | None = None

    async def __aenter__(self) -> Chromium:
        self.profile_dir.mkdir(parents=True, exist_ok=True)  # fresh per test: no state from another run
        self._process = subprocess.Popen([self.binary, *FLAGS, f"--user-data-dir={self.profile_dir}", "about:blank"],
                                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        port = await self._debugging_port()
        self._http = aiohttp.ClientSession()
        async with self._http.get(f"http://127.0.0.1:{port}/json/list") as response:
            pages = [target for target in await response.json() if target["type"] == "page"]
        self._socket = await self._http.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0)
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._http is not None:
            await self._http.close()
        if self._process is not None:
            self._process.terminate()
            try:
                self._process.wait(10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()

    async def _debugging_port(self) -> int:
        """Chromium writes the port it chose into DevToolsActivePort once it listens."""
        marker = self.profile_dir / "DevToolsActivePort"
        deadline = time.monotonic() + START_TIMEOUT_S
        while not (marker.exists() and marker.read_text().strip()):
            if self._process is not None and self._process.poll() is not None:
                raise RuntimeError(f"chromium exited with {self._process.returncode} before it listened")
            if time.monotonic() > deadline:
                raise TimeoutError(f"chromium did not listen within {START_TIMEOUT_S:.0f} s")
            await asyncio.sleep(0.05)
        return int(marker.read_text().split()[0])

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        assert self._socket is not None
        message_id = next(self._ids)
        await self._socket.send_str(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            reply = json.loads((await self._socket.receive()).data)
            if reply.get("id") == message_id:  # events and other replies are not waited for
                if "error" in reply:
                    raise RuntimeError(f"{method} failed: {reply['error']}")
                return reply["result"]

    async def navigate(self, url: str) -> None:
        await self.send("Page.navigate", url=url)

    async def evaluate(self, expression: str) -> Any:
        result = await self.send("Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, what: str, timeout_s: float = 30.0) -> Any:
        """Evaluates until the value is truthy; fails with the last value at the deadline."""
        deadline = time.monotonic() + timeout_s
        value = None
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}; last value: {value!r}")

    async def screenshot(self, path: Path) -> None:
        """The whole page, not only the window."""
        size = await self.evaluate("[document.documentElement.scrollWidth, document.documentElement.scrollHeight]")
        await self.send("Emulation.setDeviceMetricsOverride", width=size[0], height=size[1], deviceScaleFactor=1,
                        mobile=False)
        shot = await self.send("Page.captureScreenshot", format="png")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(shot["data"]))
