"""Refresh docs/ui-screenshot.png from a real offline hello-world run in headless Chromium.

    /work/venv/bin/python docs/make_screenshot.py

It runs the browser test that drives the page during the run, with
AGENTFLOW_UPDATE_SCREENSHOT=1 so the test copies its screenshot here.
Needs /usr/bin/chromium (apt-get install --no-install-recommends chromium).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    env = dict(os.environ, AGENTFLOW_UPDATE_SCREENSHOT="1")
    test = "tests/ui/test_browser.py::test_offline_hello_world_run_in_the_page"
    return subprocess.call([sys.executable, "-m", "pytest", "-q", test], cwd=ROOT, env=env)


if __name__ == "__main__":
    sys.exit(main())
