"""`agentflow` as a user runs it, in a subprocess, with its UI on a free port.

stdout and stderr go to files (a run's console can print thousands of lines,
which a pipe nobody reads would block on), and the UI's URL is read from them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.sigint import default_sigint

__all__ = ["SAFETY_TIMEOUT", "CliProcess", "start_cli"]

SAFETY_TIMEOUT = 60.0
"""Turns a hang into a failure; never a performance claim."""


@dataclass
class CliProcess:
    """A running `agentflow` command: its process and where its output goes."""

    proc: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    url: str = ""

    @property
    def port(self) -> int:
        return int(self.url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])

    @property
    def base(self) -> str:
        """`http://host:port`: the printed URL is the run's own page, `/runs/<id>`."""
        scheme, rest = self.url.split("//", 1)
        return scheme + "//" + rest.split("/", 1)[0]

    def output(self) -> tuple[str, str]:
        """(stdout, stderr) so far."""
        return (
            self.stdout.read_text("utf-8", "replace"),
            self.stderr.read_text("utf-8", "replace"),
        )

    def wait_for_output(self, text: str) -> None:
        """Wait until stdout or stderr contains `text` (fails if the process exits first)."""
        deadline = time.monotonic() + SAFETY_TIMEOUT
        while text not in "".join(self.output()):
            if self.proc.poll() is not None:
                raise AssertionError(f"agentflow exited {self.proc.returncode}: {self.output()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} from agentflow: {self.output()}")
            time.sleep(0.05)

    def get(self, path: str) -> Any:
        """GET `path` from the UI (a fresh connection each time)."""
        with urllib.request.urlopen(self.base + path, timeout=SAFETY_TIMEOUT) as response:
            return response.read()

    def interrupt(self) -> int:
        """Ctrl-C (SIGINT), then the exit code; a process that does not exit is killed."""
        self.proc.send_signal(signal.SIGINT)
        try:
            return self.proc.wait(timeout=SAFETY_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"agentflow did not exit on Ctrl-C: {self.output()}") from None

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def start_cli(*args: str, cwd: Path) -> CliProcess:
    """Start `python -m agentflow ARGS` in `cwd` without an API key; wait for its UI's URL."""
    environ = {k: v for k, v in os.environ.items() if k != "ANTHROPIC_API_KEY"}
    stdout, stderr = cwd / "agentflow.stdout", cwd / "agentflow.stderr"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "agentflow", *args],
            cwd=cwd,
            env=environ,
            stdout=out,
            stderr=err,
            stdin=subprocess.DEVNULL,
            preexec_fn=default_sigint,  # a background CI job starts us with SIGINT ignored
        )
    cli = CliProcess(proc, stdout, stderr)
    try:
        marker = "observability UI -> "
        cli.wait_for_output(marker)
        text = "".join(cli.output())
        cli.url = text.split(marker, 1)[1].split()[0]
    except BaseException:
        cli.kill()
        raise
    return cli
