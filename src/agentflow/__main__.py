"""`python -m agentflow` is the `agentflow` command."""

import sys

from agentflow.runtime.cli import main

sys.exit(main())
