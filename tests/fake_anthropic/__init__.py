"""A fake Anthropic Messages API server for tests (real HTTP and SSE on 127.0.0.1)."""
