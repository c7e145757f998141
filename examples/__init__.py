"""Example code the repository's pipelines use, installed as `agentflow.examples`."""
