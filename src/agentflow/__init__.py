"""agentflow: compile YAML multi-agent pipelines into typed Python and run them on trio."""

__version__ = "0.1.0"
__all__ = ["__version__"]
