"""`python -m agentflow` is the `agentflow` command."""

import sys

from agentflow.runtime.cli.main import main

sys.exit(main())
