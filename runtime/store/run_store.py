"""`RunStore`: open a store, record runs through its writer thread, read their history.

A run is a row of `runs` plus its events. `begin_run` creates the row with lease
epoch 1 and returns the run's `RunCommitter`, which the `EventHub` commits through
(commit, then publish: docs/store.md). `take_over` bumps the epoch: from then on
every commit of an older committer is refused (`LeaseLostError`), so two processes
never both write one run. Reads (`runs`, `run`, `events`, ...) use their own
connection and never wait for the writer.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import trio

from agentflow import __version__

from .backends import (
    Connection,
    Dialect,
    StoreError,
    StoreLocation,
    connect,
    parse_location,
)
from .schema import migrate
from .writer import StoreWriter, WriterStats

__all__ = [
    "LeaseLostError",
    "MemoRow",
    "ModelCallMemo",
    "RunCommitter",
    "RunMemo",
    "RunNotFoundError",
    "RunRecord",
    "RunStore",
    "default_owner",
    "model_call_row",
    "step_row",
    "tool_call_row",
]

_RUN_FINISHED = "run_finished"


class LeaseLostError(StoreError):
    """Another process took this run over (its lease epoch is newer): this one must stop."""


class RunNotFoundError(StoreError):
    """No run in the store has this id (or id prefix)."""


def default_owner() -> str:
    """This process, as a lease owner: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True)
class RunRecord:
    """One row of `runs`, as the history commands show it."""

    id: str
    pipeline: str
    pipeline_path: str | None
    source_hash: str
    agentflow_version: str
    model: str | None
    input: Any
    options: Any
    status: str
    owner: str
    epoch: int
    last_seq: int
    started_at: float
    updated_at: float
    finished_at: float | None
    final_state: str | None
    reason: str | None
    items_passed: int
    items_failed: int
    items_aborted: int
    items_completed: int
    model_calls: int
    input_tokens: int
    output_tokens: int
    cost_usd: float
    jsonl_path: str | None
    output: str | None

    @property
    def events(self) -> int:
        return self.last_seq + 1


_RUN_COLUMNS = (
    "id, pipeline, pipeline_path, source_hash, agentflow_version, model, "
    "(SELECT input FROM run_inputs WHERE run_id = id), options, "
    "status, owner, epoch, last_seq, started_at, updated_at, finished_at, final_state, "
    "reason, items_passed, items_failed, items_aborted, items_completed, model_calls, "
    "input_tokens, output_tokens, cost_usd, jsonl_path, output"
)


def _record(row: Sequence[Any]) -> RunRecord:
    values = list(row)
    values[6] = json.loads(values[6]) if values[6] is not None else None
    values[7] = json.loads(values[7])
    return RunRecord(*values)


class _Operation:
    """A writer operation acknowledged to the trio loop that submitted it."""

    rows = 0
    taken = False

    def __init__(self, committer: RunCommitter | None, on_done: Callable[..., None]) -> None:
        self.committer = committer
        self._on_done = on_done

    def refused(self) -> BaseException | None:
        return self.committer.failure if self.committer is not None else None

    def finished(self, error: BaseException | None) -> None:
        if error is not None and self.committer is not None and self.committer.failure is None:
            self.committer.failure = error
        self._on_done(error)

    def apply(self, cursor: Any, dialect: Dialect) -> None:
        raise NotImplementedError


class _Fenced(_Operation):
    """An operation on one run, refused unless the run still has the committer's epoch."""

    def fence(
        self, cursor: Any, dialect: Dialect, extra_set: str = "", extra: tuple[Any, ...] = ()
    ) -> None:
        committer = self.committer
        assert committer is not None
        cursor.execute(
            dialect.sql(f"UPDATE runs SET updated_at = ?{extra_set} WHERE id = ? AND epoch = ?"),
            (time.time(), *extra, committer.run_id, committer.epoch),
        )
        if cursor.rowcount != 1:
            raise LeaseLostError(
                f"run {committer.run_id}: another process took it over (lease epoch "
                f"{committer.epoch} is no longer current); this process stops writing it"
            )


class _Events(_Fenced):
    """A run's events from `first_seq` on: the bursts the hub flushed while the writer
    was busy, gathered into one operation (`RunCommitter.submit`)."""

    def __init__(
        self, committer: RunCommitter, first_seq: int | None, token: trio.lowlevel.TrioToken
    ) -> None:
        super().__init__(committer, self._acknowledge_on_the_loop)
        self._token = token
        # None: an operation of memo rows only (no event joins it).
        self.first_seq = first_seq
        self.lines: list[str] = []
        self.kinds: list[str] = []
        self.last_hash = ""
        # Memo rows (`MemoRow`), written after this operation's events.
        self.memo: list[MemoRow] = []
        # Each burst's and memo row's acknowledgement, in order (called on the trio loop).
        self.dones: list[Callable[[BaseException | None], None]] = []

    def add(
        self,
        lines: Sequence[str],
        kinds: Sequence[str],
        last_hash: str,
        done: Callable[[BaseException | None], None],
    ) -> None:
        self.lines.extend(lines)
        self.kinds.extend(kinds)
        self.last_hash = last_hash
        self.dones.append(done)
        self.rows = len(self.lines)

    def _acknowledge_on_the_loop(self, error: BaseException | None) -> None:
        with contextlib.suppress(trio.RunFinishedError):  # the loop is gone: no one to tell
            self._token.run_sync_soon(self._acknowledge, error)

    def _acknowledge(self, error: BaseException | None) -> None:
        """On the trio loop: tell every burst of this operation how it went, in order."""
        for done in self.dones:
            done(error)

    def add_memo(self, row: MemoRow | None, done: Callable[[BaseException | None], None]) -> None:
        if row is not None:  # None: only the acknowledgement (a barrier)
            self.memo.append(row)
        self.dones.append(done)

    def apply(self, cursor: Any, dialect: Dialect) -> None:
        committer = self.committer
        assert committer is not None
        if self.first_seq is None or not self.lines:
            self.fence(cursor, dialect)
        else:
            self._apply_events(cursor, dialect, committer, self.first_seq)
        if self.memo:
            _write_memo(cursor, dialect, committer.run_id, self.memo)

    def _apply_events(
        self, cursor: Any, dialect: Dialect, committer: RunCommitter, first_seq: int
    ) -> None:
        last_seq = first_seq + len(self.lines) - 1
        self.fence(cursor, dialect, ", last_seq = ?, last_hash = ?", (last_seq, self.last_hash))
        run_id, first = committer.run_id, first_seq
        if dialect.name == "postgresql":  # one statement, one round trip, for every row
            cursor.execute(
                "INSERT INTO events (run_id, seq, kind, line) SELECT %s, * FROM "
                "unnest(%s::bigint[], %s::text[], %s::text[])",
                (run_id, list(range(first, last_seq + 1)), list(map(str, self.kinds)), self.lines),
            )
        else:
            cursor.executemany(
                "INSERT INTO events (run_id, seq, kind, line) VALUES (?, ?, ?, ?)",
                zip(itertools.repeat(run_id), itertools.count(first), self.kinds, self.lines),
            )
        for kind, line in zip(self.kinds, self.lines, strict=True):
            if kind == _RUN_FINISHED:
                _record_finish(cursor, dialect, run_id, json.loads(line))


_MEMO_KEYS = {
    "steps": ("agent", "item", "attempt"),
    "model_calls": ("agent", "item", "attempt", "turn"),
    "tool_calls": ("agent", "item", "attempt", "turn", "call_id"),
}


@dataclass(frozen=True, slots=True)
class MemoRow:
    """One row of a memo table (`steps`, `model_calls`, `tool_calls`), its values encoded.

    Written by an upsert: a resumed run that re-executes a step whose memo did not
    match (a changed request) replaces the row instead of failing on its key.
    """

    table: str
    columns: tuple[str, ...]
    values: tuple[Any, ...]

    def write(self, cursor: Any, dialect: Dialect, run_id: str) -> None:
        _write_memo(cursor, dialect, run_id, [self])


def _upsert(dialect: Dialect, table: str, columns: tuple[str, ...]) -> str:
    key = ("run_id", *_MEMO_KEYS[table])
    every = ("run_id", *columns)
    updates = ", ".join(f"{c} = excluded.{c}" for c in columns if c not in key)
    return dialect.sql(
        f"INSERT INTO {table} ({', '.join(every)}) VALUES ({', '.join('?' for _ in every)}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


def _write_memo(cursor: Any, dialect: Dialect, run_id: str, rows: Sequence[MemoRow]) -> None:
    """Upsert `rows`, one `executemany` per table (a fan-out's steps share a statement)."""
    groups: dict[tuple[str, tuple[str, ...]], list[tuple[Any, ...]]] = {}
    for row in rows:
        groups.setdefault((row.table, row.columns), []).append((run_id, *row.values))
    for (table, columns), values in groups.items():
        cursor.executemany(_upsert(dialect, table, columns), values)


def _json(value: Any) -> str:
    """JSON text of a memo value; what JSON cannot hold is kept as its `str` (as the
    event log keeps a tool's odd output)."""
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def step_row(
    agent: str, item: str, attempt: int, output: Any, seq: int, *, encoded: str | None = None
) -> MemoRow:
    """The `steps` row of one finished invocation (`output`: JSON data, or `encoded`: its
    JSON text already)."""
    return MemoRow(
        "steps",
        ("agent", "item", "attempt", "output", "seq"),
        (agent, item, attempt, _json(output) if encoded is None else encoded, seq),
    )


def model_call_row(
    agent: str,
    item: str,
    attempt: int,
    turn: int,
    *,
    request_hash: str,
    response: Any,
    usage: Any,
    seq: int,
    request: Any = None,
) -> MemoRow:
    """The `model_calls` row of one model turn (`response`, `usage`, `request`: JSON data)."""
    return MemoRow(
        "model_calls",
        ("agent", "item", "attempt", "turn", "request_hash", "response", "usage", "seq", "request"),
        (
            agent, item, attempt, turn, request_hash, _json(response), _json(usage), seq,
            None if request is None else _json(request),
        ),
    )  # fmt: skip


def tool_call_row(
    agent: str, item: str, attempt: int, turn: int, call_id: str, result: Any, seq: int
) -> MemoRow:
    """The `tool_calls` row of one tool call (`result`: JSON data, its output or error)."""
    return MemoRow(
        "tool_calls",
        ("agent", "item", "attempt", "turn", "call_id", "result", "seq"),
        (agent, item, attempt, turn, call_id, _json(result), seq),
    )


@dataclass(frozen=True, slots=True)
class ModelCallMemo:
    """A recorded model turn: what `RunStore.memo` loads from `model_calls`."""

    request_hash: str
    response: Any
    usage: Any
    request: Any
    seq: int


@dataclass
class RunMemo:
    """A run's memo tables, loaded for its resume (`RunStore.memo`), keyed like the tables."""

    steps: dict[tuple[str, str, int], Any]
    model_calls: dict[tuple[str, str, int, int], ModelCallMemo]
    tool_calls: dict[tuple[str, str, int, int, str], Any]


def _record_finish(cursor: Any, dialect: Dialect, run_id: str, event: dict[str, Any]) -> None:
    payload = event.get("payload") or {}
    usage = payload.get("usage") or {}
    items = payload.get("items") or {}
    cursor.execute(
        dialect.sql(
            "UPDATE runs SET status = ?, final_state = ?, reason = ?, finished_at = ?, "
            "items_passed = ?, items_failed = ?, items_aborted = ?, items_completed = ?, "
            "model_calls = ?, input_tokens = ?, output_tokens = ?, cost_usd = ? WHERE id = ?"
        ),
        (
            payload.get("status"),
            payload.get("final_state"),
            payload.get("reason"),
            event.get("ts"),
            items.get("passed", 0),
            items.get("failed", 0),
            items.get("aborted", 0),
            items.get("completed", 0),
            usage.get("model_calls", 0),
            usage.get("input_tokens", 0),
            usage.get("output_tokens", 0),
            usage.get("cost_usd", 0.0),
            run_id,
        ),
    )


class _Call(_Fenced):
    """Any fenced write (`RunCommitter.record_output`, ...)."""

    def __init__(
        self,
        committer: RunCommitter | None,
        write: Callable[[Any, Dialect], None],
        on_done: Callable[..., None],
    ) -> None:
        super().__init__(committer, on_done)
        self._write = write

    def apply(self, cursor: Any, dialect: Dialect) -> None:
        if self.committer is not None:
            self.fence(cursor, dialect)
        self._write(cursor, dialect)


async def _acknowledged(
    writer: StoreWriter, make: Callable[[Callable[..., None]], _Operation]
) -> None:
    """Submit an operation and wait (without blocking the trio loop) for its commit."""
    token = trio.lowlevel.current_trio_token()
    done = trio.Event()
    outcome: list[BaseException | None] = []

    def on_done(error: BaseException | None) -> None:
        outcome.append(error)
        with contextlib.suppress(trio.RunFinishedError):
            token.run_sync_soon(done.set)

    writer.submit(make(on_done))
    await done.wait()
    if outcome[0] is not None:
        raise outcome[0]


class RunCommitter:
    """One run's writes, under its lease epoch: the `EventCommitter` the hub uses.

    Every commit checks the epoch; the first failure (a lost lease, a broken store)
    is kept in `failure` and refuses every later write of this run.
    """

    def __init__(self, store: RunStore, run_id: str, epoch: int) -> None:
        self.store = store
        self.run_id = run_id
        self.epoch = epoch
        self.where = f"run store {store.location.shown}"
        # Set by the writer thread (the first failed operation); read by it and the hub.
        self.failure: BaseException | None = None
        self._token: trio.lowlevel.TrioToken | None = None
        # The run's last queued events operation (under the writer's lock): bursts join
        # it until the writer takes it.
        self._queued: _Events | None = None

    def submit(
        self,
        first_seq: int,
        lines: Sequence[str],
        kinds: Sequence[str],
        last_hash: str,
        done: Callable[[BaseException | None], None],
    ) -> None:
        """Queue events `first_seq`.. for commit; `done(error)` runs on the trio loop after.

        Bursts that arrive while the writer is busy join the run's queued operation, so
        however often the hub flushes, a run costs one operation per transaction.
        """
        writer = self.store.writer
        with writer.lock:
            operation = self._queued
            if (
                operation is None
                or operation.taken
                or operation.first_seq is None
                or operation.first_seq + len(operation.lines) != first_seq
            ):
                token = self._token
                if token is None:
                    token = self._token = trio.lowlevel.current_trio_token()
                operation = self._queued = _Events(self, first_seq, token)
                operation.add(lines, kinds, last_hash, done)
                writer.submit_locked(operation)
            else:
                operation.add(lines, kinds, last_hash, done)

    def submit_memo(
        self, row: MemoRow | None, done: Callable[[BaseException | None], None]
    ) -> None:
        """Queue a memo row for commit; `done(error)` runs on the trio loop after (None: no
        row, `done` says when what was submitted before is committed).

        The row joins the run's queued operation if the writer has not taken it yet, else
        starts one: it is committed in the same transaction as the events submitted
        before it, or in a later one, never in an earlier one (commit before proceed:
        flush the hub's events first, `EventHub.after_submitted`).
        """
        writer = self.store.writer
        with writer.lock:
            operation = self._queued
            if operation is None or operation.taken:
                token = self._token
                if token is None:
                    token = self._token = trio.lowlevel.current_trio_token()
                operation = self._queued = _Events(self, None, token)
                operation.add_memo(row, done)
                writer.submit_locked(operation)
            else:
                operation.add_memo(row, done)

    async def record(self, row: MemoRow) -> None:
        """`submit_memo`, then wait for its commit.

        Raises:
            LeaseLostError, StoreError: the row was not committed.
        """
        done = trio.Event()
        outcome: list[BaseException | None] = []

        def acknowledged(error: BaseException | None) -> None:
            outcome.append(error)
            done.set()

        self.submit_memo(row, acknowledged)
        await done.wait()
        if outcome[0] is not None:
            raise outcome[0]

    async def record_step(
        self, agent: str, item: str, attempt: int, output: Any, *, seq: int
    ) -> None:
        """Commit the `steps` row of one finished invocation; returns after its commit."""
        await self.record(step_row(agent, item, attempt, output, seq))

    async def record_model_call(
        self,
        agent: str,
        item: str,
        attempt: int,
        turn: int,
        *,
        request_hash: str,
        response: Any,
        usage: Any,
        seq: int,
        request: Any = None,
    ) -> None:
        """Commit the `model_calls` row of one model turn; returns after its commit."""
        await self.record(
            model_call_row(
                agent, item, attempt, turn, request_hash=request_hash, response=response,
                usage=usage, seq=seq, request=request,
            )
        )  # fmt: skip

    async def record_tool_call(
        self, agent: str, item: str, attempt: int, turn: int, call_id: str, result: Any, *, seq: int
    ) -> None:
        """Commit the `tool_calls` row of one tool call; returns after its commit."""
        await self.record(tool_call_row(agent, item, attempt, turn, call_id, result, seq))

    async def record_output(self, output: str) -> None:
        """Keep the run's final output (what `agentflow output RUN` prints)."""

        def write(cursor: Any, dialect: Dialect) -> None:
            cursor.execute(
                dialect.sql("UPDATE runs SET output = ? WHERE id = ?"), (output, self.run_id)
            )

        await _acknowledged(self.store.writer, lambda on_done: _Call(self, write, on_done))


class RunStore:
    """An open run store: its location, its writer thread, and its queries."""

    def __init__(self, location: StoreLocation, *, create: bool = True) -> None:
        self.location = location
        self.dialect = location.dialect
        connection = connect(location, create=create)
        try:
            migrate(connection, self.dialect)
        except StoreError as exc:  # name the store in the message
            raise type(exc)(f"run store {location.shown}: {exc}") from None
        except Exception as exc:  # a full disk, a file size limit, a lost server...
            raise StoreError(f"run store {location.shown}: cannot open it: {exc}") from None
        finally:
            connection.close()
        self.writer = StoreWriter(lambda: connect(location, create=False), self.dialect)
        self.writer.start()
        self._reader: Connection | None = None
        self._reader_lock = threading.Lock()

    @classmethod
    def open(cls, where: str, *, create: bool = True) -> RunStore:
        """Open (and with `create`, create) the store at a path or postgresql:// URL,
        migrating its schema to this agentflow's version."""
        return cls(parse_location(where), create=create)

    @property
    def stats(self) -> WriterStats:
        return self.writer.stats

    def close(self) -> None:
        """Commit what is queued, stop the writer thread, close the connections."""
        self.writer.close()
        if self._reader is not None:
            self._reader.close()
            self._reader = None

    def __enter__(self) -> RunStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ------------------------------------------------------------------

    async def begin_run(
        self,
        *,
        run_id: str,
        pipeline: str,
        source_hash: str,
        input: Any,
        options: Any,
        pipeline_path: str | None = None,
        model: str | None = None,
        jsonl_path: str | None = None,
        owner: str | None = None,
        resume: Mapping[str, Any] | None = None,
    ) -> RunCommitter:
        """Create the run's row (status `running`, lease epoch 1) and return its committer.

        `resume`: what `agentflow resume` needs to re-create the run (its model and the
        model's settings), kept as `options["resume"]`.
        """
        now = time.time()
        if resume is not None:
            options = {**(options or {}), "resume": dict(resume)}
        row = (
            run_id, pipeline, pipeline_path, source_hash, __version__, model,
            json.dumps(options), "running", owner or default_owner(),
            1, -1, "", now, now, jsonl_path,
        )  # fmt: skip
        input_row = (run_id, json.dumps(input))

        def write(cursor: Any, dialect: Dialect) -> None:
            cursor.execute(
                dialect.sql(
                    "INSERT INTO runs (id, pipeline, pipeline_path, source_hash, "
                    "agentflow_version, model, options, status, owner, epoch, "
                    "last_seq, last_hash, started_at, updated_at, jsonl_path) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
                ),
                row,
            )
            cursor.execute(
                dialect.sql("INSERT INTO run_inputs (run_id, input) VALUES (?, ?)"), input_row
            )

        await _acknowledged(self.writer, lambda on_done: _Call(None, write, on_done))
        return RunCommitter(self, run_id, 1)

    async def take_over(
        self,
        run_id: str,
        owner: str | None = None,
        *,
        status: str | None = None,
        expect_epoch: int | None = None,
    ) -> RunCommitter:
        """Become the run's writer: bump its lease epoch, fencing out every older writer;
        with `status`, set the run's status too (a resume sets `running`). With
        `expect_epoch`, only if the run's epoch is still that one (compare and swap: of
        two processes taking over the run they both read, exactly one succeeds).

        Raises:
            RunNotFoundError: no such run.
            LeaseLostError: the epoch is no longer `expect_epoch` (another writer took it).
        """
        epochs: list[int] = []
        guard, guarded = ("", ()) if expect_epoch is None else (" AND epoch = ?", (expect_epoch,))

        def write(cursor: Any, dialect: Dialect) -> None:
            if status is None:
                cursor.execute(
                    dialect.sql(
                        "UPDATE runs SET epoch = epoch + 1, owner = ? WHERE id = ?" + guard
                    ),
                    (owner or default_owner(), run_id, *guarded),
                )
            else:
                cursor.execute(
                    dialect.sql(
                        "UPDATE runs SET epoch = epoch + 1, owner = ?, status = ?, "
                        "finished_at = NULL WHERE id = ?" + guard
                    ),
                    (owner or default_owner(), status, run_id, *guarded),
                )
            if cursor.rowcount != 1:
                if expect_epoch is not None:
                    cursor.execute(dialect.sql("SELECT epoch FROM runs WHERE id = ?"), (run_id,))
                    row = cursor.fetchone()
                    if row is not None:
                        raise LeaseLostError(
                            f"run {run_id}: its lease epoch is {row[0]}, not {expect_epoch}: "
                            "another process took it over"
                        )
                raise RunNotFoundError(f"no run {run_id} in {self.location.shown}")
            cursor.execute(dialect.sql("SELECT epoch FROM runs WHERE id = ?"), (run_id,))
            epochs.append(int(cursor.fetchone()[0]))

        await _acknowledged(self.writer, lambda on_done: _Call(None, write, on_done))
        return RunCommitter(self, run_id, epochs[-1])

    async def set_status(self, run_id: str, status: str) -> None:
        """Set a run's status (outside its lease: for a run no process owns).

        Raises:
            RunNotFoundError: no such run.
        """

        def write(cursor: Any, dialect: Dialect) -> None:
            cursor.execute(
                dialect.sql("UPDATE runs SET status = ?, updated_at = ? WHERE id = ?"),
                (status, time.time(), run_id),
            )
            if cursor.rowcount != 1:
                raise RunNotFoundError(f"no run {run_id} in {self.location.shown}")

        await _acknowledged(self.writer, lambda on_done: _Call(None, write, on_done))

    # -- reading ------------------------------------------------------------------

    def memo(self, run_id: str) -> RunMemo:
        """The run's memo tables (`steps`, `model_calls`, `tool_calls`), for its resume."""
        steps = {
            (agent, item, int(attempt)): json.loads(output)
            for agent, item, attempt, output in self._query(
                "SELECT agent, item, attempt, output FROM steps WHERE run_id = ?", (run_id,)
            )
        }
        model_calls = {
            (agent, item, int(attempt), int(turn)): ModelCallMemo(
                request_hash,
                json.loads(response),
                json.loads(usage),
                None if request is None else json.loads(request),
                int(seq),
            )
            for agent, item, attempt, turn, request_hash, response, usage, seq, request in (
                self._query(
                    "SELECT agent, item, attempt, turn, request_hash, response, usage, seq, "
                    "request FROM model_calls WHERE run_id = ?",
                    (run_id,),
                )
            )
        }
        tool_calls = {
            (agent, item, int(attempt), int(turn), call_id): json.loads(result)
            for agent, item, attempt, turn, call_id, result in self._query(
                "SELECT agent, item, attempt, turn, call_id, result FROM tool_calls "
                "WHERE run_id = ?",
                (run_id,),
            )
        }
        return RunMemo(steps, model_calls, tool_calls)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._reader_lock:
            if self._reader is None:
                self._reader = connect(self.location, create=False)
            cursor = self._reader.cursor()
            try:
                cursor.execute(self.dialect.sql(sql), tuple(params))
                return list(cursor.fetchall())
            finally:
                cursor.close()

    def runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int | None = 20,
    ) -> list[RunRecord]:
        """Runs, newest first, optionally of one pipeline and/or one status."""
        where, params = [], []
        if pipeline is not None:
            where.append("pipeline = ?")
            params.append(pipeline)
        if status is not None:
            where.append("status = ?")
            params.append(status)
        sql = f"SELECT {_RUN_COLUMNS} FROM runs"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY started_at DESC, id"
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        return [_record(row) for row in self._query(sql, params)]

    def run(self, run_id: str) -> RunRecord:
        """The run with this id, or the one run whose id starts with it.

        Raises:
            RunNotFoundError: none, or the prefix names several runs.
        """
        rows = self._query(f"SELECT {_RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,))
        if not rows:
            escaped = run_id.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            rows = self._query(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE id LIKE ? ESCAPE '\\' "
                "ORDER BY started_at LIMIT 6",
                (escaped + "%",),
            )
        if not rows:
            raise RunNotFoundError(f"no run '{run_id}' in the run store {self.location.shown}")
        if len(rows) > 1:
            ids = ", ".join(row[0] for row in rows[:5])
            raise RunNotFoundError(
                f"'{run_id}' names several runs ({ids}{', ...' if len(rows) > 5 else ''}); "
                "give more of the id"
            )
        return _record(rows[0])

    def lines(
        self, run_id: str, *, kinds: Sequence[str] | None = None, after: int = -1
    ) -> Iterator[str]:
        """The run's committed event lines, in seq order (optionally of some kinds only,
        and only those with a seq above `after`: the UI follows a run in another process)."""
        sql = "SELECT line FROM events WHERE run_id = ?"
        params: list[Any] = [run_id]
        if after >= 0:
            sql += " AND seq > ?"
            params.append(after)
        if kinds:
            sql += " AND kind IN (" + ", ".join("?" for _ in kinds) + ")"
            params.extend(kinds)
        sql += " ORDER BY seq"
        for (line,) in self._query(sql, params):
            yield line
