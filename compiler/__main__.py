"""`python -m agentflow.compiler` is `agentflowc`."""

import sys

from .cli import main

sys.exit(main())
