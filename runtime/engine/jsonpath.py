"""The JSONPath subset `on_fail.feedback_path` accepts, and feedback extraction.

Grammar: `$` followed by any number of steps: `.name`, `['name']` /
`["name"]`, `[n]` (n may be negative), `[*]` or `.*`. Enough to point at a QA
agent's issues (`$.issues`, `$.issues[*]`, `$.issues[0]`, `$.data.problems`)
without a dependency. The compiler checks paths with this same `parse_path`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from ..agents import AgentOutput, QAIssue
from ..errors import OutputValidationError, PipelineDefinitionError

__all__ = ["InvalidJsonPath", "Step", "feedback_issues", "parse_path", "select"]

Step = str | int | None
"""A parsed step: a key (str), an index (int), or a wildcard (None)."""

_STEP = re.compile(
    r"""\.(?P<name>[A-Za-z_][A-Za-z0-9_]*)
      | \.(?P<star>\*)
      | \[(?P<index>-?\d+)\]
      | \[(?P<wild>\*)\]
      | \[(?P<q>['"])(?P<quoted>[^'"]*)(?P=q)\]""",
    re.VERBOSE,
)


class InvalidJsonPath(PipelineDefinitionError):
    """Raised when a `feedback_path` is not in the supported JSONPath subset."""


@functools.lru_cache(maxsize=256)
def parse_path(path: str) -> tuple[Step, ...]:
    """Parse `path` into steps.

    Raises:
        InvalidJsonPath: the path is not `$` followed by supported steps.
    """
    if not path.startswith("$"):
        raise InvalidJsonPath(
            f"feedback_path {path!r} must start with '$' (the QA agent's output), e.g. '$.issues'"
        )
    steps: list[Step] = []
    pos = 1
    while pos < len(path):
        match = _STEP.match(path, pos)
        if match is None:
            raise InvalidJsonPath(
                f"feedback_path {path!r}: cannot parse from {path[pos:]!r} (column {pos + 1}); "
                "use .name, ['name'], [n], [*] or .* steps"
            )
        if match["name"] is not None:
            steps.append(match["name"])
        elif match["quoted"] is not None:
            steps.append(match["quoted"])
        elif match["index"] is not None:
            steps.append(int(match["index"]))
        else:
            steps.append(None)
        pos = match.end()
    return tuple(steps)


def select(document: Any, steps: Sequence[Step]) -> list[Any]:
    """Every value `steps` reaches in `document`; missing keys select nothing."""
    current = [document]
    for step in steps:
        following: list[Any] = []
        for value in current:
            if step is None:
                if isinstance(value, dict):
                    following.extend(value.values())
                elif isinstance(value, list):
                    following.extend(value)
            elif isinstance(step, int):
                if isinstance(value, list) and -len(value) <= step < len(value):
                    following.append(value[step])
            elif isinstance(value, dict) and step in value:
                following.append(value[step])
        current = following
    return current


def feedback_issues(output: AgentOutput, steps: Sequence[Step]) -> list[QAIssue]:
    """The QA issues `steps` selects in a QA agent's output dump.

    A selected list is flattened one level (so `$.issues` and `$.issues[*]`
    agree); `$` alone means the output's issues. Dicts become `QAIssue`s;
    strings become blocking issues.

    Raises:
        OutputValidationError: a selected value is neither an issue nor a string.
    """
    if steps == ("issues",) or not steps:
        return list(output.issues)  # the common case, without dumping the output
    issues: list[QAIssue] = []
    for value in select(output.model_dump(mode="json"), steps):
        for entry in value if isinstance(value, list) else [value]:
            issues.append(_as_issue(entry))
    return issues


def _as_issue(entry: Any) -> QAIssue:
    if isinstance(entry, str):
        return QAIssue(message=entry)
    if isinstance(entry, dict):
        try:
            return QAIssue.model_validate(entry)
        except ValidationError as exc:
            raise OutputValidationError(
                f"feedback_path selected {entry!r}, which is not a QA issue: "
                f"{exc.errors()[0]['msg']}. "
                "Point feedback_path at the QA agent's issues (e.g. '$.issues')"
            ) from exc
    raise OutputValidationError(
        f"feedback_path selected {entry!r}; it must select QA issues (objects with 'message') "
        "or strings. Point feedback_path at the QA agent's issues (e.g. '$.issues')"
    )
