"""The event log: the event model, the hash-chained hub and its sink buffers, live
subscriptions, `agentflow verify` and the replay diff. See docs/architecture.md."""
