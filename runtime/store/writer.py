"""The store's one writer thread: group commit, with every run's lease checked.

Under trio the database drivers are synchronous (DURABLE.md: no async PostgreSQL
driver runs under trio), so a store has ONE thread that owns its write connection.
Whatever is queued when the thread wakes is written as ONE transaction (group
commit): a burst of flushes from many tasks, or from many concurrent runs sharing
the store, costs one commit. Each queued operation then gets its acknowledgement
through its own `done` callback (the run's `RunCommitter` hands it to the trio loop
with `TrioToken.run_sync_soon`), so no trio task ever blocks on a commit.

If a transaction fails, it is rolled back and its operations are retried one per
transaction, so one run's failure (a lost lease, a constraint) never fails another
run's events. A run whose operation failed is failed for good: its later
operations are refused without touching the database, so its committed events
never have a gap.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from .backends import Connection, Dialect, StoreError

__all__ = ["StoreOperation", "StoreWriter", "WriterStats"]


class StoreOperation(Protocol):
    """One unit of work for the writer thread."""

    # Set by the writer (under its lock) when it takes the operation off the queue:
    # until then a submitter may still add to it (`StoreWriter.lock`).
    taken: bool

    def apply(self, cursor: Any, dialect: Dialect) -> None:
        """Do the writes (inside the writer's transaction); raise to fail the operation."""

    def finished(self, error: BaseException | None) -> None:
        """Called on the writer thread once the transaction committed (None) or failed."""

    def refused(self) -> BaseException | None:
        """An error that fails the operation before it is applied (a run already failed)."""


@dataclass
class WriterStats:
    """Counters of one writer thread (tests assert on these, never on time)."""

    transactions: int = 0  # committed transactions
    operations: int = 0  # operations committed
    rows: int = 0  # event rows committed
    failed_transactions: int = 0  # transactions rolled back
    failed_operations: int = 0  # operations acknowledged with an error
    largest_batch: int = 0  # operations in the largest committed transaction


class StoreWriter:
    """The writer thread of one store and its queue."""

    def __init__(
        self, connect: Callable[[], Connection], dialect: Dialect, name: str = "agentflow-store"
    ) -> None:
        self._connect = connect
        self.dialect = dialect
        self.stats = WriterStats()
        self._queue: deque[StoreOperation] = deque()
        self._wakeup = threading.Condition()
        self._stopping = False
        # Held by tests (`hold()`) to let operations pile up: the next batch is then
        # everything queued meanwhile.
        self._gate = threading.Lock()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False
        self._connection: Connection | None = None

    def start(self) -> None:
        if not self._started:
            self._started = True
            self._thread.start()

    @property
    def lock(self) -> threading.Condition:
        """Held, a queued operation whose `taken` is False cannot be taken: a submitter
        may add to it instead of queueing another (`RunCommitter.submit`)."""
        return self._wakeup

    def submit(self, operation: StoreOperation) -> None:
        """Queue an operation; it is acknowledged through `operation.finished`."""
        with self._wakeup:
            self.submit_locked(operation)

    def submit_locked(self, operation: StoreOperation) -> None:
        """`submit`, for a caller already holding `lock`."""
        if self._stopping:
            raise StoreError("the run store is closed; no more writes")
        self._queue.append(operation)
        self._wakeup.notify()

    def _take(self) -> list[StoreOperation]:
        """Everything queued (the caller holds the lock)."""
        batch = list(self._queue)
        self._queue.clear()
        for operation in batch:
            operation.taken = True
        return batch

    def hold(self) -> threading.Lock:
        """A lock that, while held, keeps the writer from starting its next transaction."""
        return self._gate

    def close(self) -> None:
        """Write what is queued, then stop the thread and close its connection."""
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        if self._started:
            self._thread.join()

    def _run(self) -> None:
        try:
            self._connection = self._connect()
        except BaseException as exc:
            self._fail_everything(exc)
            return
        try:
            while True:
                with self._wakeup:
                    while not self._queue and not self._stopping:
                        self._wakeup.wait()
                    if not self._queue:
                        return
                with self._gate:
                    with self._wakeup:
                        batch = self._take()
                    self._write(batch)
        finally:
            self._connection.close()

    def _fail_everything(self, error: BaseException) -> None:
        failure = StoreError(f"the run store cannot be written: {error}")
        while True:
            with self._wakeup:
                while not self._queue and not self._stopping:
                    self._wakeup.wait()
                if not self._queue:
                    return
                batch = self._take()
            for operation in batch:
                self.stats.failed_operations += 1
                operation.finished(failure)

    def _write(self, batch: list[StoreOperation]) -> None:
        live = []
        for operation in batch:
            refusal = operation.refused()
            if refusal is None:
                live.append(operation)
            else:
                self.stats.failed_operations += 1
                operation.finished(refusal)
        if not live:
            return
        if self._transaction(live) is None:
            for operation in live:
                operation.finished(None)
            return
        # One failed: write each alone, so the others still commit.
        for operation in live:
            refusal = operation.refused()  # an earlier operation of its run failed just now
            error = refusal if refusal is not None else self._transaction([operation])
            if error is not None:
                self.stats.failed_operations += 1
            operation.finished(error)

    def _transaction(self, operations: list[StoreOperation]) -> BaseException | None:
        """Apply `operations` in one transaction; None when it committed, else the error."""
        connection = self._connection
        assert connection is not None
        cursor = connection.cursor()
        try:
            cursor.execute(self.dialect.begin)
            rows = 0
            for operation in operations:
                operation.apply(cursor, self.dialect)
                rows += getattr(operation, "rows", 0)
            cursor.execute("COMMIT")
        except Exception as exc:
            self.dialect.rollback(connection)
            self.stats.failed_transactions += 1
            return exc
        stats = self.stats
        stats.transactions += 1
        stats.operations += len(operations)
        stats.rows += rows
        stats.largest_batch = max(stats.largest_batch, len(operations))
        return None
