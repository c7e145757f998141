"""Stage 3: semantic checks on the IR. Each check yields diagnostics; all of them run.

The checks assume only what the IR guarantees (ids match the pattern, values
are in range); anything across nodes (references, graphs, shapes that depend on
a strategy) is checked here. A check that depends on references being valid
skips the invalid ones, which another check reports, so one mistake gives one
diagnostic. Prompt template parsing lives in `prompt_checks`.
"""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterator
from urllib.parse import urlsplit

from agentflow.runtime.spec import AGENT_EVENTS, BUILTIN_TOOL_KEYS

from .checks_base import Check, CheckContext, agent_paths
from .checks_control import check_fan_out_cycles, check_gathers, check_route
from .checks_executor import check_executors
from .checks_flow import (
    check_agent_reachability,
    check_aggregation,
    check_dispatch,
    check_dispatch_cycles,
    check_on_fail,
    check_parallel_paths,
    check_state_graph,
    parse_feedback_path,
)
from .checks_human import check_human_agents
from .checks_v2 import (
    check_agent_kinds,
    check_failure_reaches_terminal,
    check_verdict_transitions,
)
from .diagnostics import Diagnostic, did_you_mean, sort_diagnostics
from .flow import dominates, immediate_dominators
from .naming import is_python_identifier, module_name
from .parse import Path
from .prompt_checks import gather_problems, reference_problems, template_problems

__all__ = [
    "BUILTIN_TOOLS",
    "CHECKS",
    "RESERVED_AGENT_IDS",
    "Check",
    "CheckContext",
    "parse_feedback_path",
    "run_checks",
]

BUILTIN_TOOLS: frozenset[str] = frozenset(BUILTIN_TOOL_KEYS)
"""Tool ids that `type: builtin` may name."""

RESERVED_AGENT_IDS: frozenset[str] = frozenset({"aggregation"})
"""Agent ids the runtime uses for itself (the aggregation's triggers are `aggregation.*`)."""


MAX_MODULE_NAME = 200
"""The longest generated module name (a file name: most filesystems allow 255 bytes)."""

_KINDS = {"agents": "agent", "tools": "tool", "state_machine": "state"}


def check_ids(ctx: CheckContext) -> Iterator[Diagnostic]:
    """Ids become Python names: no keywords; `aggregation` is reserved; a usable module name."""
    spec = ctx.spec
    module = module_name(spec.name)
    if not is_python_identifier(module):
        yield ctx.at(
            ("name",),
            f"pipeline name '{spec.name}' gives the module name '{module}', which is not a "
            "Python identifier; use letters, digits, '-' or '_', starting with a letter",
        )
    elif len(module) > MAX_MODULE_NAME:
        yield ctx.at(
            ("name",),
            f"pipeline name gives a {len(module)}-character module name, too long for a file "
            f"name; shorten the name to at most {MAX_MODULE_NAME} characters",
        )
    defined: list[tuple[Path, str]] = [
        (("agents", i, "id"), a.id) for i, a in enumerate(spec.agents)
    ]
    defined += [(("tools", i, "id"), t.id) for i, t in enumerate(spec.tools)]
    states = spec.state_machine.states
    defined += [(("state_machine", "states", i, "id"), s.id) for i, s in enumerate(states)]
    for path, ident in defined:
        if keyword.iskeyword(ident):
            yield ctx.at(
                path,
                f"id '{ident}' is a Python keyword and cannot name a generated identifier; "
                f"rename it (e.g. '{ident}_{_KINDS[str(path[0])]}')",
            )
    for path, agent in agent_paths(ctx):
        if agent.id in RESERVED_AGENT_IDS:
            yield ctx.at(
                (*path, "id"),
                f"agent id '{agent.id}' is reserved (the aggregation's triggers use it); "
                "rename the agent",
            )


def check_duplicates(ctx: CheckContext) -> Iterator[Diagnostic]:
    """No id defined twice; no list that names the same thing twice."""
    spec = ctx.spec
    lists: list[tuple[Path, list[str], str]] = [
        (("agents",), [a.id for a in spec.agents], "agent id"),
        (("tools",), [t.id for t in spec.tools], "tool id"),
        (("state_machine", "states"), [s.id for s in spec.state_machine.states], "state id"),
    ]
    for path, ids, what in lists:
        yield from _duplicates(ctx, path, ids, what, suffix=("id",))
    yield from _duplicates(
        ctx, ("state_machine", "terminal"), list(spec.state_machine.terminal), "terminal state"
    )
    if spec.aggregation is not None:
        yield from _duplicates(ctx, ("aggregation", "gates"), list(spec.aggregation.gates), "gate")
    for path, agent in agent_paths(ctx):
        yield from _duplicates(ctx, (*path, "tools"), list(agent.tools), "tool reference")
        if agent.dispatch is not None:
            targets = list(agent.dispatch.targets)
            yield from _duplicates(ctx, (*path, "dispatch", "targets"), targets, "dispatch target")


def _duplicates(
    ctx: CheckContext, path: Path, ids: list[str], what: str, suffix: Path = ()
) -> Iterator[Diagnostic]:
    first: dict[str, int] = {}
    for index, ident in enumerate(ids):
        if ident in first:
            line = ctx.source.value((*path, first[ident], *suffix)).line
            yield ctx.at(
                (*path, index, *suffix),
                f"duplicate {what} '{ident}' (first at line {line}); remove or rename one",
            )
        else:
            first[ident] = index


def check_state_references(ctx: CheckContext) -> Iterator[Diagnostic]:
    """Every state named in initial, terminal, transitions and aggregation is declared."""
    spec, states = ctx.spec, ctx.state_ids
    refs: list[tuple[Path, str, str]] = [
        (("state_machine", "initial"), spec.state_machine.initial, "initial state")
    ]
    refs += [
        (("state_machine", "terminal", i), s, "terminal state")
        for i, s in enumerate(spec.state_machine.terminal)
    ]
    for path, agent in agent_paths(ctx):
        for event in AGENT_EVENTS:
            target = getattr(agent.transitions, event)
            if target is not None:
                refs.append(((*path, "transitions", event), target, f"transition {event}"))
    if spec.aggregation is not None:
        for outcome in ("on_complete", "on_any_abort"):
            target = getattr(spec.aggregation, outcome).transition
            refs.append((("aggregation", outcome, "transition"), target, f"aggregation {outcome}"))
    for path, state, what in refs:
        if state not in states:
            yield ctx.at(
                path,
                f"{what} '{state}' is not a declared state{did_you_mean(state, states)}; "
                "declare it under state_machine.states",
            )


def check_entry(ctx: CheckContext) -> Iterator[Diagnostic]:
    """At least one agent, and `entry` (if given) names one."""
    if not ctx.spec.agents:
        yield ctx.at(("agents",), "no agents declared; a pipeline needs at least one agent")
    entry = ctx.spec.entry
    if entry is not None and entry not in ctx.agent_ids:
        yield ctx.at(
            ("entry",),
            f"entry '{entry}' is not an agent{did_you_mean(entry, ctx.agent_ids)}; "
            "name one of the agents (or drop 'entry' to start with the first listed)",
        )


_PLUGIN_PATH = re.compile(
    r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$"
)


def check_tools(ctx: CheckContext) -> Iterator[Diagnostic]:
    """Tools: builtins known, plugins with a valid `module:Class`, config keys as identifiers."""
    for index, tool in enumerate(ctx.spec.tools):
        path: Path = ("tools", index)
        if tool.type == "builtin":
            if tool.id not in BUILTIN_TOOLS:
                yield ctx.at(
                    (*path, "id"),
                    f"'{tool.id}' is not a builtin tool{did_you_mean(tool.id, BUILTIN_TOOLS)}; "
                    f"builtins: {', '.join(sorted(BUILTIN_TOOLS))} (or use type: plugin)",
                )
            if tool.plugin is not None:
                yield ctx.at(
                    (*path, "plugin"),
                    "a builtin tool takes no 'plugin'; remove it or use type: plugin",
                )
            known = BUILTIN_TOOL_KEYS.get(tool.id, frozenset())
            for key in tool.config if tool.id in BUILTIN_TOOL_KEYS else ():
                if key not in known:
                    takes = ", ".join(f"'{k}'" for k in sorted(known))
                    loc = ctx.source.key((*path, "config", key))  # at the key itself
                    yield Diagnostic(
                        loc.file,
                        loc.line,
                        loc.column,
                        f"builtin tool '{tool.id}' has no config key '{key}'"
                        f"{did_you_mean(key, known)}; it takes {takes}",
                    )
        elif tool.plugin is None:
            yield ctx.at(
                (*path, "type"), f"plugin tool '{tool.id}' needs 'plugin: package.module:ClassName'"
            )
        elif not _PLUGIN_PATH.match(tool.plugin) or any(
            keyword.iskeyword(part) for part in re.split(r"[.:]", tool.plugin)
        ):
            yield ctx.at(
                (*path, "plugin"),
                f"plugin '{tool.plugin}' is not a Python 'dotted.module:ClassName' path, e.g. "
                "'my_pkg.tools:MyTool'",
            )
        for key in tool.config:
            if not is_python_identifier(key):
                yield ctx.at(
                    (*path, "config", key),
                    f"config key '{key}' is not a Python identifier (config keys become keyword "
                    "arguments); rename it",
                )
    declared = {tool.id for tool in ctx.spec.tools}
    for path, agent in agent_paths(ctx):
        for index, tool_id in enumerate(agent.tools):
            if tool_id not in declared:
                yield ctx.at(
                    (*path, "tools", index),
                    f"tool '{tool_id}' is not declared{did_you_mean(tool_id, declared)}; add it "
                    "under the top-level 'tools'",
                )


def check_encodable_text(ctx: CheckContext) -> Iterator[Diagnostic]:
    """A lone surrogate (a YAML escape such as "\\ud800") cannot be written as UTF-8: not in
    the audit log, a cassette or the terminal; report each value that holds one."""
    pending: list[tuple[Path, object]] = [((), ctx.spec.model_dump())]
    while pending:
        path, value = pending.pop()
        if isinstance(value, str):
            if any("\ud800" <= char <= "\udfff" for char in value):
                yield ctx.at(
                    path,
                    "this text holds a lone surrogate (from a \\ud800-\\udfff escape), which "
                    "cannot be written as UTF-8; remove the escape",
                )
        elif isinstance(value, dict):
            pending += [((*path, key), item) for key, item in value.items()]
        elif isinstance(value, list | tuple):
            pending += [((*path, index), item) for index, item in enumerate(value)]


def _is_http_url(url: str) -> bool:
    """An http(s) URL with a host and a valid port, and no whitespace or control characters
    (urlsplit would silently drop CR, LF and tab)."""
    if any(c.isspace() or not c.isprintable() for c in url):
        return False
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not 0..65535
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def check_settings(ctx: CheckContext) -> Iterator[Diagnostic]:
    """Free-text settings that must not be empty; base_url must be http(s)."""
    spec = ctx.spec
    if not spec.name.strip():
        yield ctx.at(("name",), "the pipeline name is empty")
    base_url = spec.defaults.base_url
    if base_url is not None and not _is_http_url(base_url):
        yield ctx.at(
            ("defaults", "base_url"),
            f"base_url '{base_url}' is not an http(s) URL, e.g. 'http://127.0.0.1:8080'",
        )
    models: list[tuple[Path, str]] = [(("defaults", "model"), spec.defaults.model)]
    models += [
        ((*path, "model"), agent.model)
        for path, agent in agent_paths(ctx)
        if agent.model is not None
    ]
    for path, model in models:
        if not model or not model.strip():
            yield ctx.at(path, "the model name is empty; e.g. 'claude-sonnet-4-6'")


def check_prompts(ctx: CheckContext) -> Iterator[Diagnostic]:
    """Prompt templates parse and use only PROMPT_VARIABLES (reported in the prompt file)."""
    spec = ctx.spec
    entry_ok = bool(spec.agents) and (spec.entry is None or spec.entry in ctx.agent_ids)
    idom = immediate_dominators(spec) if entry_ok and ctx.graph_valid else None

    def runs_before(first: str, reader: str) -> bool:
        assert idom is not None
        return reader not in idom or dominates(idom, first, reader)

    for agent_id, text in ctx.prompts.items():
        display = ctx.prompt_files.get(agent_id, agent_id)
        first = ctx.prompt_lines.get(agent_id, 1)
        problems = template_problems(text)
        if not problems:
            order = runs_before if idom is not None else None
            problems = gather_problems(text, agent_id, spec)
            problems += reference_problems(text, agent_id, spec, order)
        for line, message in problems:
            yield Diagnostic(
                display, first + line - 1, 1, f"{message} (prompt of agent '{agent_id}')"
            )


CHECKS: tuple[Check, ...] = (
    check_ids,
    check_duplicates,
    check_state_references,
    check_state_graph,
    check_entry,
    check_dispatch,
    check_dispatch_cycles,
    check_route,
    check_gathers,
    check_fan_out_cycles,
    check_agent_reachability,
    check_parallel_paths,
    check_on_fail,
    check_aggregation,
    check_agent_kinds,
    check_human_agents,
    check_verdict_transitions,
    check_failure_reaches_terminal,
    check_tools,
    check_settings,
    check_executors,
    check_encodable_text,
    check_prompts,
)


def run_checks(ctx: CheckContext, checks: tuple[Check, ...] = CHECKS) -> list[Diagnostic]:
    """Run every check and return all diagnostics, sorted (pipeline file first, by line)."""
    found = [diagnostic for check in checks for diagnostic in check(ctx)]
    return sort_diagnostics(found, ctx.source.file)
