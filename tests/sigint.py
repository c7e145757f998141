"""Children that must answer Ctrl-C get SIGINT's default disposition back.

A shell starts a background job (`.ci/run &`, nohup) with SIGINT ignored, every
child inherits that, and Python keeps an inherited SIG_IGN: the tests that send
SIGINT to an `agentflow run` then saw a run that never stopped. `Popen(...,
preexec_fn=default_sigint)` undoes it in the child only.
"""

from __future__ import annotations

import signal


def default_sigint() -> None:
    """Run in the child between fork and exec: SIGINT back to its default action."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
