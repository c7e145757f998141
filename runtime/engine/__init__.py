"""The engine: runs one pipeline's agents over its work items (dispatch, QA loop, plans,
the default agent body, the state machine, how a run ends). See docs/architecture.md."""
