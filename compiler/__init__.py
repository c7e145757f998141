"""agentflow.compiler: YAML pipeline -> validated IR -> typed Python module."""

__all__: list[str] = []
