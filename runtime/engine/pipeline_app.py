"""`Pipeline`: a compiled pipeline plus the app's tools and sinks, ready to run.

The seed's API: register plugin tools and extra sinks, then `run()`.

    pipeline = hello_world.pipeline()
    pipeline.register_tool("my_tool", MyTool(api_key_env="MY_API_KEY"))
    pipeline.register_sink(MySink())
    result = await pipeline.run("a topic")
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import PipelineDefinitionError
from ..events.sink import LogSink
from ..models.base import Model
from ..pipeline import CompiledPipeline
from ..tools.base import Tool
from .runner import RunOptions, RunResult, run_pipeline

if TYPE_CHECKING:
    from ..store import RunStore

__all__ = ["Pipeline"]


class Pipeline:
    """A compiled pipeline with its handlers, registered tools and sinks."""

    def __init__(self, compiled: CompiledPipeline, handlers: object | None = None) -> None:
        self.compiled = compiled
        self.handlers = handlers
        # Invariant: keys are tool ids the pipeline declares.
        self._tools: dict[str, Tool] = {}
        self._sinks: list[LogSink] = []

    @property
    def tools(self) -> Mapping[str, Tool]:
        """The tools registered so far, by id."""
        return dict(self._tools)

    def register_tool(self, tool_id: str, tool: Tool) -> None:
        """Use `tool` for the declared tool `tool_id` in every later run.

        Raises:
            PipelineDefinitionError: the pipeline declares no tool `tool_id`, or
                `tool` does not implement the Tool protocol.
        """
        declared = [t.id for t in self.compiled.spec.tools]
        if tool_id not in declared:
            raise PipelineDefinitionError(
                f"pipeline '{self.compiled.spec.name}' declares no tool '{tool_id}' "
                f"(declared: {', '.join(declared) or 'none'}); add it under `tools:` "
                "in the YAML (type: plugin) and recompile"
            )
        if not isinstance(tool, Tool):
            raise PipelineDefinitionError(
                f"{type(tool).__name__} is not a Tool: it needs `id`, `description`, "
                "`input_schema` and `async def execute(self, input)`"
            )
        self._tools[tool_id] = tool

    def register_sink(self, sink: LogSink) -> None:
        """Send every event of later runs to `sink` too.

        Raises:
            PipelineDefinitionError: `sink` does not implement the LogSink protocol.
        """
        if not isinstance(sink, LogSink):
            raise PipelineDefinitionError(
                f"{type(sink).__name__} is not a LogSink: it needs `name`, "
                "`async def emit(self, event, *, line)` and `async def aclose(self)`"
            )
        self._sinks.append(sink)

    async def run(
        self, input: Any = "", *, model: Model | None = None, options: RunOptions | None = None
    ) -> RunResult:
        """Run once with the registered tools and sinks (see `run_pipeline`)."""
        return await run_pipeline(
            self.compiled,
            input,
            handlers=self.handlers,
            model=model,
            tools=self._tools,
            sinks=tuple(self._sinks),
            options=options,
        )

    async def resume(
        self,
        run_id: str,
        *,
        store: RunStore | str,
        model: Model | None = None,
        options: RunOptions | None = None,
        allow_changed: bool = False,
        force: bool = False,
    ) -> RunResult:
        """Continue an interrupted run of this pipeline from the run store, with the
        registered tools and sinks (`resume_run`; docs/resume.md).

        Args:
            run_id: the run's id (or a unique prefix of it).
            store: an open `RunStore`, or where one is (a path or postgresql:// URL;
                opened and closed here).
            model, options, allow_changed, force: as for `resume_run`.

        Raises:
            ResumeRefused: the run finished, its source changed, or a live process owns it.
            RunNotFoundError: no such run in the store.
        """
        from ..store import RunStore
        from .resume import resume_run

        if isinstance(store, str):
            with RunStore.open(store, create=False) as opened:
                return await self.resume(
                    run_id, store=opened, model=model, options=options,
                    allow_changed=allow_changed, force=force,
                )  # fmt: skip
        return await resume_run(
            self.compiled,
            store,
            run_id,
            handlers=self.handlers,
            model=model,
            tools=self._tools,
            sinks=tuple(self._sinks),
            options=options,
            allow_changed=allow_changed,
            force=force,
        )
