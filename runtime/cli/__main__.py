"""`python -m agentflow.runtime.cli` is the `agentflow` command."""

import sys

from .main import main

sys.exit(main())
