"""The `agentflow` command (`main.main`): run, verify, serve. See docs/architecture.md."""
