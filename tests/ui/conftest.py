"""Real headless Chromium for the browser tests, driven from trio.

Playwright's sync API must be used from the thread that started it, and its
async API is asyncio-only, so one dedicated thread owns the browser and the
tests send it callables (`BrowserThread.call`), awaited from trio without
blocking the loop that serves the UI.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, TypeVar

import pytest
import trio

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "browser: drives the UI in real headless Chromium")


class BrowserThread:
    """A thread that owns one Playwright + Chromium and runs the callables it is given."""

    def __init__(self) -> None:
        self._jobs: queue.Queue[tuple[Callable[..., Any], Future[Any]] | None] = queue.Queue()
        self._ready: Future[Any] = Future()
        self._thread = threading.Thread(target=self._main, name="chromium", daemon=True)
        self._thread.start()
        self.browser = self._ready.result(timeout=60)

    def _main(self) -> None:
        from playwright.sync_api import sync_playwright

        try:
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
                )
                self._ready.set_result(browser)
                while (job := self._jobs.get()) is not None:
                    fn, future = job
                    try:
                        future.set_result(fn())
                    except BaseException as error:  # handed to the awaiting test
                        future.set_exception(error)
                browser.close()
        except BaseException as error:
            if not self._ready.done():
                self._ready.set_exception(error)
            raise

    async def call(self, fn: Callable[[], T]) -> T:
        """Run `fn` on the browser thread; the trio loop keeps running meanwhile."""
        future: Future[T] = Future()
        self._jobs.put((fn, future))
        return await trio.to_thread.run_sync(future.result, abandon_on_cancel=True)

    def close(self) -> None:
        self._jobs.put(None)
        self._thread.join(timeout=30)


@pytest.fixture(scope="session")
def browser_thread() -> Iterator[BrowserThread]:
    if not CHROMIUM.exists():
        pytest.skip(
            f"{CHROMIUM} is not installed (apt-get install --no-install-recommends chromium)"
        )
    thread = BrowserThread()
    yield thread
    thread.close()
