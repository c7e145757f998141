"""The run's state machine over a generated `TRANSITIONS` table."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Generic, TypeVar

from ..errors import InvalidTransition

__all__ = ["Move", "StateMachine"]

S = TypeVar("S", bound=enum.Enum)
T = TypeVar("T", bound=enum.Enum)


class Move(Generic[S, T]):
    """One attempted move: `noop` when the machine was already in `target`."""

    __slots__ = ("noop", "source", "target", "trigger")

    def __init__(self, source: S, target: S, trigger: T, noop: bool) -> None:
        self.source = source
        self.target = target
        self.trigger = trigger
        self.noop = noop


class StateMachine(Generic[S, T]):
    """Holds the current state and takes only the moves `transitions` lists."""

    def __init__(self, transitions: Mapping[tuple[S, T], S], initial: S, terminal: frozenset[S]):
        self._transitions = transitions
        self._terminal = terminal
        # Invariant: always a member of the State enum; changes only through `fire`.
        self.state: S = initial

    @property
    def is_terminal(self) -> bool:
        return self.state in self._terminal

    def target_of(self, trigger: T, agent: str | None = None) -> S:
        """The state `trigger` would move to now; raises InvalidTransition if none."""
        target = self._transitions.get((self.state, trigger))
        if target is None:
            raise InvalidTransition(str(self.state.value), str(trigger.value), agent)
        return target

    def fire(self, trigger: T, agent: str | None = None) -> Move[S, T]:
        """Take the move for `trigger`; a move into the current state is a no-op.

        Raises:
            InvalidTransition: TRANSITIONS has no entry for (current state, trigger).
        """
        source = self.state
        target = self.target_of(trigger, agent)
        self.state = target
        return Move(source, target, trigger, target == source)

    def advance(self, target: S) -> bool:
        """Move to `target`, already looked up in this machine's TRANSITIONS for the
        current state (the engine's plans precompute those rows); True if a no-op.

        `fire` without the second table lookup and the `Move` object: the engine's
        hot path. Anyone without such a row must use `fire`, which checks the move.
        """
        noop = target is self.state
        self.state = target
        return noop
