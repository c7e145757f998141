"""What every semantic check reads (`CheckContext`), and the dispatch-graph helpers they share."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import cached_property

from agentflow.runtime.spec import RESERVED_TARGETS, AgentSpec, DispatchSpec, PipelineSpec

from .diagnostics import Diagnostic, Severity
from .parse import Path, SourceMap

__all__ = [
    "Check",
    "CheckContext",
    "agent_paths",
    "broken_dispatches",
    "dispatch_edges",
    "dispatch_is_valid",
    "downstream",
    "named_targets",
]


@dataclass(frozen=True)
class CheckContext:
    """What every check reads: the IR, where each part came from, and the prompts' text.

    `prompts` maps agent id to prompt text for the prompts that could be read (a
    file's, or inline `instructions`); `prompt_files` maps agent id to the file shown
    in diagnostics; `prompt_lines` maps an agent with inline instructions to the
    pipeline-file line where its text starts (a prompt file starts at line 1).
    """

    spec: PipelineSpec
    source: SourceMap
    prompts: Mapping[str, str] = field(default_factory=dict)
    prompt_files: Mapping[str, str] = field(default_factory=dict)
    prompt_lines: Mapping[str, int] = field(default_factory=dict)

    def at(self, path: Path, message: str, severity: Severity = "error") -> Diagnostic:
        """A diagnostic at the value found at `path` (or its nearest spelled-out parent)."""
        loc = self.source.value(path)
        return Diagnostic(loc.file, loc.line, loc.column, message, severity)

    # Cached: checks ask for these once per agent, and the IR is frozen.
    @cached_property
    def agent_ids(self) -> set[str]:
        return {agent.id for agent in self.spec.agents}

    @cached_property
    def state_ids(self) -> set[str]:
        return {state.id for state in self.spec.state_machine.states}

    @cached_property
    def graph_valid(self) -> bool:
        """`dispatch_is_valid(spec)`, computed once."""
        return dispatch_is_valid(self.spec)


Check = Callable[[CheckContext], Iterator[Diagnostic]]


def agent_paths(ctx: CheckContext) -> Iterator[tuple[Path, AgentSpec]]:
    """(path of the agent in the document, agent) for every agent, in order."""
    for index, agent in enumerate(ctx.spec.agents):
        yield ("agents", index), agent


def dispatch_edges(spec: PipelineSpec) -> Iterator[tuple[str, str, str]]:
    """(from agent, to agent, strategy) for every dispatch, valid or not: targets, route
    case agents (not `end`/`abort`), then the join or reduce agent (strategy "join" /
    "reduce")."""
    for agent in spec.agents:
        if agent.dispatch is None:
            continue
        for target in named_targets(agent.dispatch):
            yield agent.id, target, agent.dispatch.strategy
        if agent.dispatch.join is not None:
            yield agent.id, agent.dispatch.join, "join"
        if agent.dispatch.reduce is not None:
            yield agent.id, agent.dispatch.reduce, "reduce"


def named_targets(dispatch: DispatchSpec) -> list[str]:
    """Every agent a dispatch names as a target, in order (route cases: not end/abort)."""
    targets = [dispatch.target] if dispatch.target else []
    targets += dispatch.targets
    cases = [*dispatch.cases.values(), *([dispatch.default] if dispatch.default else [])]
    targets += [case.target for case in cases if case.target not in RESERVED_TARGETS]
    return targets


def downstream(spec: PipelineSpec, start: str) -> set[str]:
    """Agents reachable from `start` along dispatch edges (including `start`)."""
    successors: dict[str, list[str]] = {}
    for source, target, _ in dispatch_edges(spec):
        successors.setdefault(source, []).append(target)
    seen = {start}
    stack = [start]
    while stack:
        for target in successors.get(stack.pop(), ()):
            if target not in seen:
                seen.add(target)
                stack.append(target)
    return seen


def broken_dispatches(spec: PipelineSpec) -> set[str]:
    """Agents whose dispatch names a missing agent or (not by a route case) itself, or
    has the wrong shape for its strategy (check_dispatch / check_route / check_gathers
    report each)."""
    ids = {agent.id for agent in spec.agents}
    broken: set[str] = set()
    for agent in spec.agents:
        dispatch = agent.dispatch
        if dispatch is None:
            continue
        strategy = dispatch.strategy
        if strategy == "route":
            shape_ok = bool(dispatch.cases) and dispatch.target is None and not dispatch.targets
        elif strategy == "parallel_broadcast":
            shape_ok = bool(dispatch.targets) and dispatch.target is None
        else:
            shape_ok = dispatch.target is not None and not dispatch.targets
        route_keys = bool(dispatch.cases) or dispatch.default is not None
        shape_ok = shape_ok and (strategy == "route" or not route_keys)
        shape_ok = shape_ok and (dispatch.join is None or strategy == "parallel_broadcast")
        shape_ok = shape_ok and (dispatch.reduce is None or strategy == "parallel_fan_out")
        targets = [dispatch.target] if dispatch.target else list(dispatch.targets)
        gathers = [g for g in (dispatch.join, dispatch.reduce) if g is not None]
        named = named_targets(dispatch) + gathers
        if (
            not shape_ok
            or any(t not in ids for t in named)
            or any(t == agent.id for t in targets + gathers)
        ):
            broken.add(agent.id)
    return broken


def dispatch_is_valid(spec: PipelineSpec) -> bool:
    """True if every dispatch names existing agents in the shape its strategy needs.

    Graph checks (reachability, upstream) are skipped otherwise: the broken
    dispatch is already reported, and the graph it gives would only add noise.
    """
    return not broken_dispatches(spec)
