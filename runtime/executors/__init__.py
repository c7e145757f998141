"""Where agent invocations run: in the run's process (`LocalExecutor`) or on Ray.

`agentflow.runtime.executors.ray` imports Ray; nothing else here does, so a run
that asks for no Ray executor never imports it (docs/scale.md).
"""
