"""`RunCatalog`: every run the UI serves, by id.

The runs of this process (`agentflow run`: the live hub's `UiSource`) and, when a
run store is given, every run recorded there. A run of another process (or a
finished one) is read from the store on first use and then followed: a feeder
task polls the store for lines past the last one held, so a run another
`agentflow run` is writing shows up live, and a crashed one (status `running`,
its owner gone: `agentflow runs` says `interrupted`) is shown as crashed.

Store reads are blocking (SQLite, PostgreSQL): they run in a worker thread so
they never stall the page's event loop.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import trio

from ..errors import AgentflowError
from ..pipeline import CompiledPipeline
from ..store import RunMemo, RunNotFoundError, RunRecord, RunStore, StoreError, StoreLocation
from ..store.liveness import shown_status
from .source import Redactor, UiSource

__all__ = ["PipelineLoader", "RunCatalog", "StoreRunSource", "UnknownRunError"]

PipelineLoader = Callable[[str], CompiledPipeline]
"""Loads a run's pipeline from its YAML path (inspection only: imports nothing)."""

POLL_S = 0.25
"""How often a followed run of another process is read again from the store."""

RUNS_LISTED = 500
_NO_STORE = "this UI has no run store (--no-store): the request sent is not recorded"
_NOT_RECORDED = "the run store has no record of this call (yet)"
_NO_REQUEST = "this call was recorded without its request"


class UnknownRunError(AgentflowError):
    """No run the UI serves has this id."""


class StoreRunSource(UiSource):
    """A run read from the store and followed while it may still grow."""

    def __init__(
        self,
        store: RunStore,
        record: RunRecord,
        pipeline: CompiledPipeline | None,
        *,
        redactor: Redactor | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        super().__init__(pipeline, model_name=record.model, redactor=redactor)
        self.run_id = self.stored_id = record.id
        self.record = record
        self._store = store
        self._poll_s = poll_s
        self.pipeline_name = record.pipeline
        self.live = shown_status(record) == "running"
        self.loaded = trio.Event()

    async def load(self) -> None:
        """Read the lines committed so far (once, before the first client is served)."""
        await self._read_more()
        self.loaded.set()

    async def _read_more(self) -> None:
        after = len(self.lines) - 1
        lines = await trio.to_thread.run_sync(
            lambda: list(self._store.lines(self.stored_id, after=after))
        )
        if lines:
            self.extend((json.loads(line), line) for line in lines)
        self.record = await trio.to_thread.run_sync(self._store.run, self.stored_id)
        self.live = shown_status(self.record) == "running"

    async def run(self) -> None:
        """Follow the run: read new lines every `poll_s` while its owner may write more.

        A run that ended (or whose owner is gone) is re-read less often: a resume
        (`agentflow resume`) continues its log."""
        await self.loaded.wait()
        while True:
            await trio.sleep(self._poll_s if self.live else 4 * self._poll_s)
            await self._read_more()

    @property
    def store_status(self) -> str:
        return shown_status(self.record)


class RunCatalog:
    """The runs the UI serves: live ones of this process, and with a store every recorded run."""

    def __init__(
        self,
        store: RunStore | None = None,
        *,
        store_location: StoreLocation | None = None,
        loader: PipelineLoader | None = None,
        redactor: Redactor | None = None,
        poll_s: float = POLL_S,
    ) -> None:
        """`store`: an open store; or `store_location`, opened (for reading) the first time
        a page needs it, if it exists by then (`agentflow run` creates its store after the
        UI has its port). A store opened here is closed by `close()`. `loader` reads a
        stored run's pipeline YAML for its graph (the CLI gives `load_for_inspection`;
        None: stored runs are drawn from their events alone)."""
        self.store = store
        self._location = store_location
        self._owns_store = False
        self._loader = loader
        self._redactor = redactor
        self._poll_s = poll_s
        # Invariant: run id -> its source; live ones added by `add`, store ones on first use.
        self._sources: dict[str, UiSource] = {}
        self._pipelines: dict[tuple[str, str], CompiledPipeline | None] = {}
        self._nursery: trio.Nursery | None = None
        self._opening: dict[str, trio.Event] = {}
        self.primary: str | None = None
        # Run id -> its memo tables as last read (refreshed when a call is not in them).
        self._memos: dict[str, RunMemo] = {}

    @property
    def has_store(self) -> bool:
        """True when the UI lists the runs of a store (`/` is then the runs list)."""
        return self.store is not None or self._location is not None

    async def open_store(self) -> RunStore | None:
        """The store, opened on first use from `store_location` (None: none, or not yet
        created)."""
        if self.store is None and self._location is not None and self._location.exists():
            location = self._location
            try:
                self.store = await trio.to_thread.run_sync(lambda: RunStore(location, create=False))
            except StoreError:
                return None
            self._owns_store = True
        return self.store

    def close(self) -> None:
        """Close a store this catalog opened (its writer thread, its connections)."""
        if self._owns_store and self.store is not None:
            self.store.close()
            self.store = None
            self._owns_store = False

    def add(self, run_id: str, source: UiSource, *, primary: bool = False) -> None:
        """Serve `source` (a live run of this process) as run `run_id`."""
        source.run_id = run_id
        self._sources[run_id] = source
        if primary or self.primary is None:
            self.primary = run_id
        if self._nursery is not None:
            self._nursery.start_soon(source.run)

    async def run(self) -> None:
        """Feed every source (live hubs, followed store runs) until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            for source in self._sources.values():
                nursery.start_soon(source.run)
            await trio.sleep_forever()

    def primary_source(self) -> UiSource | None:
        return self._sources.get(self.primary) if self.primary else None

    async def source(self, run_id: str) -> UiSource:
        """The source of run `run_id` (read from the store on first use).

        Raises:
            UnknownRunError: neither this process nor the store has that run.
        """
        found = self._sources.get(run_id)
        if found is not None:
            if isinstance(found, StoreRunSource):
                await found.loaded.wait()
            return found
        store = await self.open_store()
        if store is None or self._nursery is None:
            raise UnknownRunError(f"no run '{run_id}' here")
        opening = self._opening.get(run_id)
        if opening is not None:  # another request is reading it
            await opening.wait()
            return await self.source(run_id)
        self._opening[run_id] = opening = trio.Event()
        try:
            try:
                record = await trio.to_thread.run_sync(store.run, run_id)
            except RunNotFoundError as error:
                raise UnknownRunError(str(error)) from None
            if record.id != run_id:  # a prefix: the page lives at the full id
                raise UnknownRunError(f"no run '{run_id}' here (did you mean {record.id}?)")
            pipeline = await self._pipeline(record)
            source = StoreRunSource(
                store, record, pipeline, redactor=self._redactor, poll_s=self._poll_s
            )
            await source.load()
            self._sources[run_id] = source
            self._nursery.start_soon(source.run)
            return source
        finally:
            del self._opening[run_id]
            opening.set()

    async def model_call(
        self, run_id: str, agent: str, item: str, attempt: int, turn: int
    ) -> dict[str, Any]:
        """One recorded model call of a run: the request sent (system, messages, tools,
        parameters: `model_calls.request`) and the full response, from the store.

        `{"request": null, "why": ...}` when the store does not hold it (no store, a
        run made with `--no-store`, or a call recorded before requests were stored)."""
        store = await self.open_store()
        if store is None:
            return {"request": None, "response": None, "why": _NO_STORE}
        key = (agent, item, attempt, turn)
        memo = self._memos.get(run_id)
        if memo is None or key not in memo.model_calls:  # new calls since: read again
            memo = await trio.to_thread.run_sync(store.memo, run_id)
            self._memos[run_id] = memo
        call = memo.model_calls.get(key)
        if call is None:
            return {"request": None, "response": None, "why": _NOT_RECORDED}
        return {
            "request": call.request,
            "response": call.response,
            "usage": call.usage,
            "request_hash": call.request_hash,
            "why": None if call.request is not None else _NO_REQUEST,
        }

    async def _pipeline(self, record: RunRecord) -> CompiledPipeline | None:
        """The run's pipeline from its YAML (None when it cannot be read any more, or no
        longer has the run's source hash: the page then draws the agents the events
        name). Read once per (path, source hash)."""
        path = record.pipeline_path
        if path is None or self._loader is None:
            return None
        key = (path, record.source_hash)
        if key not in self._pipelines:
            loader = self._loader
            try:
                pipeline: CompiledPipeline | None = await trio.to_thread.run_sync(loader, path)
            except Exception:  # moved, edited into an invalid file, ...: events still show
                pipeline = None
            if pipeline is not None and pipeline.source_sha256 != record.source_hash:
                pipeline = None  # the YAML changed since: its graph is not this run's
            self._pipelines[key] = pipeline
        return self._pipelines[key]

    async def runs(self, limit: int = RUNS_LISTED) -> list[dict[str, Any]]:
        """Every run, newest first, as the runs list shows it."""
        listed: list[dict[str, Any]] = []
        seen: set[str] = set()
        store = await self.open_store()
        if store is not None:
            records = await trio.to_thread.run_sync(lambda: store.runs(limit=limit))
            for record in records:
                listed.append(self._summary(record))
                seen.add(record.id)
        for run_id, source in self._sources.items():
            if run_id not in seen:  # a run of this process not in the store (--no-store)
                listed.insert(0, _live_summary(run_id, source))
        return listed

    def _summary(self, record: RunRecord) -> dict[str, Any]:
        live = self._sources.get(record.id)
        status = shown_status(record)
        summary = {
            "id": record.id,
            "pipeline": record.pipeline,
            "status": status,
            "state": _state_of(status),
            "model": record.model,
            "started_at": record.started_at,
            "finished_at": record.finished_at,
            "final_state": record.final_state,
            "events": record.events,
            "items": {
                "passed": record.items_passed + record.items_completed,
                "failed": record.items_failed + record.items_aborted,
            },
            "model_calls": record.model_calls,
            "tokens": record.input_tokens + record.output_tokens,
            "cost_usd": record.cost_usd,
        }
        if live is not None and record.finished_at is None:  # counters are written at the end
            summary.update(_counters(live))
        return summary


def _state_of(status: str) -> str:
    """The page's run state for a store status."""
    if status == "running":
        return "live"
    if status == "interrupted":
        return "crashed"
    if status == "waiting":
        return "waiting"
    return "finished"


def _counters(source: UiSource) -> dict[str, Any]:
    totals = source.totals
    return {
        "events": len(source.lines),
        "items": {"passed": totals["passed"], "failed": totals["failed"]},
        "model_calls": totals["model_calls"],
        "tokens": totals["tokens"],
        "cost_usd": totals["cost_usd"],
    }


def _live_summary(run_id: str, source: UiSource) -> dict[str, Any]:
    state = source.run_state
    return {
        "id": run_id,
        "pipeline": source.pipeline.spec.name if source.pipeline is not None else "",
        "status": {"live": "running", "crashed": "interrupted"}.get(state, source.final_status),
        "state": state,
        "model": source.model_name,
        "started_at": source.started_at,
        "finished_at": source.finished_at,
        "final_state": source.final_state,
        **_counters(source),
    }
