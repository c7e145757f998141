"""Checks of where agents run: `executor: local | ray` and `resources:` (docs/scale.md).

A sub-pipeline agent runs its child's dispatcher on the parent's hub and services,
so it cannot itself move to a Ray actor (nor, for now, can its child's agents).
`resources:` is what one invocation reserves on a Ray cluster; on an agent that
says `executor: local` it can never apply, which is a mistake worth a warning
(with `defaults.executor: local` it still applies under `--executor ray`).
"""

from __future__ import annotations

from collections.abc import Iterator

from .checks_base import CheckContext, agent_paths
from .diagnostics import Diagnostic

__all__ = ["check_executors"]


def check_executors(ctx: CheckContext) -> Iterator[Diagnostic]:
    """A sub-pipeline agent on Ray is an error; resources on an explicitly local agent warn."""
    for path, agent in agent_paths(ctx):
        if agent.pipeline is not None and (agent.executor == "ray" or agent.resources):
            key = "executor" if agent.executor == "ray" else "resources"
            yield ctx.at(
                (*path, key),
                f"agent '{agent.id}' runs the sub-pipeline {agent.pipeline}, whose dispatcher "
                f"runs in the run's own process: it takes no `{key}:` (a sub-pipeline's "
                "agents run in the run's process too: docs/scale.md, Limits)",
            )
        elif agent.resources is not None and agent.executor == "local":
            yield ctx.at(
                (*path, "resources"),
                f"agent '{agent.id}' says `executor: local`, so its `resources:` (what an "
                "invocation reserves on a Ray cluster) never apply; remove them or set "
                "`executor: ray`",
                "warning",
            )
