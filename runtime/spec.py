"""The frozen pipeline definition (the compiler's IR, and `PIPELINE` in generated modules).

The shape mirrors the YAML DSL key for key (see docs/dsl.md), so the JSON Schema
published for editors is generated from these models. Every node may carry the
source location it was parsed from (`loc`); it is excluded from equality, dumps
and the JSON Schema, and generated modules do not emit it.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import SkipJsonSchema

__all__ = [
    "AgentSpec",
    "AggregationSpec",
    "AggregationTransition",
    "DefaultsSpec",
    "DispatchSpec",
    "FieldSpec",
    "HumanSpec",
    "Loc",
    "NamedField",
    "OnFailSpec",
    "PipelineSpec",
    "ResourcesSpec",
    "RetrySpec",
    "RouteCase",
    "ShapeSpec",
    "StateMachineSpec",
    "StateSpec",
    "ToolSpec",
    "TransitionsSpec",
]

DispatchStrategy = Literal["sequential", "parallel_fan_out", "parallel_broadcast", "route"]
AggregationStrategy = Literal["all_pass", "any_pass", "threshold"]
OnFailAction = Literal["feedback_and_retry", "abort"]
OnExhausted = Literal["end", "abort"]
ExecutorKind = Literal["local", "ray"]
"""Where an agent's invocations run: in the run's process, or in a Ray actor (docs/scale.md)."""
ROUTE_END = "end"
"""A route target: the item's path ends here, successfully (its output: the router's)."""
ROUTE_ABORT = "abort"
"""A route target: the item aborts, the reason naming the router and the case."""
RESERVED_TARGETS: tuple[str, ...] = (ROUTE_END, ROUTE_ABORT)
"""Route targets that are not agents; no agent may take these ids."""
OutputKind = Literal["text", "verdict", "items"]
"""What an agent answers: free text, a QA verdict, or fan-out work items."""
AGENT_EVENTS: tuple[str, ...] = ("on_start", "on_complete", "on_pass", "on_fail", "on_abort")
STRUCTURED_REASKS = 1
"""How often the agent runner asks again for an invalid verdict or item list."""
BUILTIN_TOOL_KEYS: dict[str, frozenset[str]] = {"filesystem": frozenset({"root"})}
"""Each builtin tool id (`type: builtin`) and the config keys it takes: the compiler
refuses any other key at its line, and `tools/registry.py` builds the tool from them."""
Identifier = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]

# Upper bounds of the numeric knobs (docs/dsl.md): a value past one is a typo or an
# attack (`backoff_ms: 1e29` would sleep forever), never a setting anyone needs.
MAX_ATTEMPTS = 100
MAX_BACKOFF_MS = 600_000
"""Ten minutes: also the cap on any single QA-loop wait, however many retries came before."""
MAX_TOKENS = 128_000
MAX_CONCURRENCY = 1_000
MAX_TOOL_ROUNDS = 1_000
MAX_TIMEOUT_S = 3_600.0
MAX_ITERATIONS = 1_000


class Loc(BaseModel):
    """A position in a pipeline source file; line and column are 1-based."""

    model_config = ConfigDict(frozen=True)
    file: str
    line: int
    column: int = 1

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"


class _Node(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")
    loc: SkipJsonSchema[Loc | None] = Field(default=None, exclude=True, repr=False)

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        fields = type(self).model_fields
        return all(getattr(self, f) == getattr(other, f) for f in fields if f != "loc")

    def __hash__(self) -> int:
        return hash(tuple(repr(getattr(self, f)) for f in type(self).model_fields if f != "loc"))


class RetrySpec(_Node):
    """How often a QA loop may run the agents it checks, and how long to wait between."""

    max_attempts: int = Field(default=3, ge=1, le=MAX_ATTEMPTS)
    backoff_ms: int = Field(default=1000, ge=0, le=MAX_BACKOFF_MS)


class DefaultsSpec(_Node):
    """Settings every agent inherits unless it overrides them."""

    model: str = "claude-sonnet-4-6"
    max_tokens: int = Field(default=1024, ge=1, le=MAX_TOKENS)
    temperature: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    retry: RetrySpec = RetrySpec()
    max_concurrency: int = Field(default=16, ge=1, le=MAX_CONCURRENCY)
    max_tool_rounds: int = Field(default=8, ge=1, le=MAX_TOOL_ROUNDS)
    timeout_s: float = Field(default=120.0, gt=0, le=MAX_TIMEOUT_S, allow_inf_nan=False)
    base_url: str | None = None
    max_cost_usd: float | None = Field(default=None, gt=0, allow_inf_nan=False)
    max_total_tokens: int | None = Field(default=None, ge=1)
    # The rate limits this pipeline's live calls keep to (a key shared with others):
    # `AnthropicModel(max_requests_per_minute=, max_tokens_per_minute=)`, docs/models.md.
    max_requests_per_minute: int | None = Field(default=None, ge=1)
    max_tokens_per_minute: int | None = Field(default=None, ge=1)
    executor: ExecutorKind = "local"


class ResourcesSpec(_Node):
    """What one invocation of an agent reserves on a Ray cluster (`executor: ray` only)."""

    num_cpus: float | None = Field(default=None, ge=0, le=1024, allow_inf_nan=False)
    memory_mb: int | None = Field(default=None, ge=1, le=16_777_216)


class ToolSpec(_Node):
    """A tool agents may call: a framework builtin, or a plugin class `module:Class`."""

    id: Identifier
    type: Literal["builtin", "plugin"]
    plugin: str | None = None
    description: str | None = None
    config: dict[str, str] = Field(default_factory=dict)


class StateSpec(_Node):
    id: Identifier


class StateMachineSpec(_Node):
    initial: Identifier
    terminal: tuple[Identifier, ...]
    states: tuple[StateSpec, ...]


class TransitionsSpec(_Node):
    """The state each agent event moves the run's state machine to (None: no move)."""

    on_start: Identifier | None = None
    on_complete: Identifier | None = None
    on_pass: Identifier | None = None
    on_fail: Identifier | None = None
    on_abort: Identifier | None = None


class RouteCase(_Node):
    """Where one route case goes (DSL v2 section 4).

    `target` is an agent id, `end` or `abort`. A case with `max_iterations` may be
    taken at most that many times per work item; the next time the router picks
    it, `on_exhausted` ends the item (`end`: successfully, with its latest output)
    or aborts it (`abort`, the default). In YAML a case is the target alone
    (`billing: billing_agent`) or this mapping.
    """

    target: Identifier
    max_iterations: int | None = Field(default=None, ge=1, le=MAX_ITERATIONS)
    on_exhausted: OnExhausted = "abort"


class DispatchSpec(_Node):
    """Where an agent's output goes (docs/dsl.md, "Dispatch").

    `target` (sequential, fan-out) or `targets` (broadcast). Fan-out: `items`
    names the `list[...]` output field holding the work items (v1: the agent's
    `AgentOutput.items`), `reduce` the agent run once on the parent item after
    every child item finished. Broadcast: `join` the agent run once on the item
    after every target finished. Route: `on` the enum or bool output field
    (`route` by default), `cases` its values -> `RouteCase` (in YAML order),
    `default` the case for any other value.
    """

    strategy: DispatchStrategy
    target: Identifier | None = None
    targets: tuple[Identifier, ...] = ()
    max_concurrency: int | None = Field(default=None, ge=1, le=MAX_CONCURRENCY)
    items: str | None = None
    join: Identifier | None = None
    reduce: Identifier | None = None
    on: str | None = None
    cases: dict[str, RouteCase] = Field(default_factory=dict)
    default: RouteCase | None = None


class OnFailSpec(_Node):
    """What a QA agent's failing verdict does: re-run `target` with feedback, or abort."""

    action: OnFailAction
    target: Identifier | None = None
    feedback_path: str = "$.issues"


FieldKind = Literal["str", "int", "float", "bool", "enum", "list", "object"]


class FieldSpec(_Node):
    """One field's type in a declared shape (DSL v2 `output:` / `input:`)."""

    kind: FieldKind
    values: tuple[str, ...] = ()
    """The enum's values (kind "enum")."""
    items: FieldSpec | None = None
    """The element type (kind "list")."""
    fields: tuple[NamedField, ...] = ()
    """The nested fields (kind "object")."""
    optional: bool = False
    description: str | None = None


class NamedField(_Node):
    name: str
    type: FieldSpec


class ShapeSpec(_Node):
    """A declared data shape: an agent's `output:` or the pipeline's `input:`."""

    fields: tuple[NamedField, ...]


class HumanSpec(_Node):
    """A person answers this agent (docs/human.md): the run parks its item until then.

    `question` is the question's template file (read like a `prompt:` file); without
    it the question is the agent's inline `instructions`. `assignee` names who answers.
    """

    question: str | None = None
    assignee: str | None = None


class AgentSpec(_Node):
    """One agent. Exactly one of `prompt` (a file), `instructions` (inline), `handler`
    (`package.module:function`), `pipeline` (a child pipeline file, relative to this
    one's directory, run as this agent: DSL v2 section 6) or `human` (a person answers:
    the question is `human.question`, a file, or inline `instructions`).

    `kind: human` (with `prompt:` or `instructions:` as the question) is another YAML
    spelling of `human:`; lowering fills `human` from it (a `prompt:` becomes
    `human.question`), and the runtime reads only `human`.
    """

    id: Identifier
    kind: Literal["human"] | None = None
    prompt: str | None = None
    instructions: str | None = None
    handler: str | None = None
    pipeline: str | None = None
    human: HumanSpec | None = None
    output: ShapeSpec | None = None
    tools: tuple[Identifier, ...] = ()
    model: str | None = None
    max_tokens: int | None = Field(default=None, ge=1, le=MAX_TOKENS)
    temperature: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    max_tool_rounds: int | None = Field(default=None, ge=1, le=MAX_TOOL_ROUNDS)
    transitions: TransitionsSpec = TransitionsSpec()
    dispatch: DispatchSpec | None = None
    retry: RetrySpec | None = None
    on_fail: OnFailSpec | None = None
    executor: ExecutorKind | None = None
    """None: `defaults.executor`."""
    resources: ResourcesSpec | None = None


class AggregationTransition(_Node):
    transition: Identifier


class AggregationSpec(_Node):
    """How per-item gate verdicts decide the run: all_pass, any_pass or threshold."""

    strategy: AggregationStrategy
    gates: tuple[Identifier, ...]
    min_pass: int | None = Field(default=None, ge=1)
    on_complete: AggregationTransition
    on_any_abort: AggregationTransition


class PipelineSpec(_Node):
    """A whole pipeline. `entry` defaults to the first agent listed."""

    name: str
    version: str = "0.1.0"
    entry: Identifier | None = None
    defaults: DefaultsSpec = DefaultsSpec()
    input: ShapeSpec | None = None
    tools: tuple[ToolSpec, ...] = ()
    state_machine: StateMachineSpec
    implicit_state_machine: bool = False
    """True when the YAML left out `state_machine` and lower.py filled the default one."""
    agents: tuple[AgentSpec, ...]
    aggregation: AggregationSpec | None = None

    def agent(self, agent_id: str) -> AgentSpec:
        """Return the agent with this id; KeyError if there is none."""
        for agent in self.agents:
            if agent.id == agent_id:
                return agent
        raise KeyError(agent_id)

    def output_kind(self, agent: AgentSpec) -> OutputKind:
        """The agent's answer: "verdict" (QA: `on_fail` or a gate), "items" (fan-out), "text"."""
        if agent.on_fail is not None or (
            self.aggregation is not None and agent.id in self.aggregation.gates
        ):
            return "verdict"
        if (
            agent.dispatch is not None
            and agent.dispatch.strategy == "parallel_fan_out"
            and agent.dispatch.items is None
        ):
            return "items"
        return "text"

    @property
    def entry_agent(self) -> str:
        return self.entry or self.agents[0].id


FieldSpec.model_rebuild()
