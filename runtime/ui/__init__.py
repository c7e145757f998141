"""The live observability UI: a Quart-Trio app served by Hypercorn (see docs/ui.md)."""

from .app import UiConfig, create_app
from .catalog import RunCatalog
from .server import PortInUseError, serve_log, serve_source, serve_store, serve_ui
from .source import RunLogError, UiSource

__all__ = [
    "PortInUseError",
    "RunCatalog",
    "RunLogError",
    "UiConfig",
    "UiSource",
    "create_app",
    "serve_log",
    "serve_source",
    "serve_store",
    "serve_ui",
]
