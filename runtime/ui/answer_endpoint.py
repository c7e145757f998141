"""`POST /api/runs/<run>/answer`: answer a waiting run's human step from a page (docs/human.md).

The body is JSON: `{"item": "main", "agent": "approver", "answer": {...}, "by": "alice"}`
(`by` optional). The answer is validated and recorded exactly as `agentflow answer`
does it (the `AnswerBackend` the CLI gives the server), then the run resumes in the
server process. The endpoint is the UI's only write, so besides the UI's token (every
route requires it when set, `app.py`) and its Host check it refuses cross-site writes:

- the request must be `Content-Type: application/json` (a form cannot send it, and a
  script on another site cannot without a CORS preflight, which this UI never grants);
- a browser's `Origin` (sent with every POST from a page) must be this UI's own
  address, and `Sec-Fetch-Site`, when sent, must be `same-origin` or `none`.

Replies: 200 `{"run", "agent", "item", "attempt", "by", "resuming"}`; 400 a malformed
body; 403 a foreign Origin; 404 no such run, or a UI that takes no answers (only
`agentflow serve` over a store does); 409 the run is
not waiting or the step is not open; 415 not JSON; 422 an answer that does not fit
(`error` names every bad field; nothing is recorded).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, Protocol

from quart import Response, request
from quart_trio import QuartTrio

__all__ = ["MAX_ANSWER_BYTES", "AnswerBackend", "AnswerRejected", "install_answer_endpoint"]

MAX_ANSWER_BYTES = 64 * 1024
"""The largest answer body accepted: a person's form, not a data upload."""


class AnswerRejected(Exception):
    """The backend did not record the answer: `status` is the HTTP status to reply."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class AnswerBackend(Protocol):
    """Records answers to human steps and resumes their runs (`cli/answer.py`)."""

    async def answer(
        self, run_id: str, *, item: str, agent: str, answer: object, by: str
    ) -> dict[str, Any]:
        """Validate and record; start the resume. Returns the reply's JSON object.

        Raises:
            AnswerRejected: nothing was recorded.
        """
        ...


def _reply(status: int, body: dict[str, Any]) -> Response:
    return Response(json.dumps(body), status=status, content_type="application/json")


def install_answer_endpoint(
    app: QuartTrio, is_own_origin: Callable[[str, str], bool], backend: AnswerBackend | None
) -> None:
    """Add the endpoint to `app`; `is_own_origin(origin, host)` says whether a browser's
    `Origin` header names this UI (`host`: the request's Host)."""

    @app.post("/api/runs/<run_id>/answer")
    async def answer(run_id: str) -> Response:
        origin = request.headers.get("Origin")
        if origin is not None and not is_own_origin(origin, request.headers.get("Host", "")):
            return _reply(403, {"error": f"Origin {origin!r} is not this UI: refused"})
        site = request.headers.get("Sec-Fetch-Site")
        if site is not None and site not in ("same-origin", "none"):
            return _reply(403, {"error": f"a {site} request may not answer a run: refused"})
        if request.mimetype != "application/json":
            return _reply(
                415, {"error": "send the answer as JSON (Content-Type: application/json)"}
            )
        if backend is None:
            return _reply(
                404,
                {"error": "this UI does not take answers: `agentflow serve` (over the run "
                 "store) does, or `agentflow answer`"},
            )  # fmt: skip
        raw = await request.get_data(as_text=False)
        if len(raw) > MAX_ANSWER_BYTES:
            return _reply(400, {"error": f"the body is over {MAX_ANSWER_BYTES} bytes"})
        try:
            body = json.loads(raw)
        except (ValueError, RecursionError) as exc:
            return _reply(400, {"error": f"the body is not JSON: {exc}"})
        problem = _body_problem(body)
        if problem is not None:
            return _reply(400, {"error": problem})
        try:
            recorded = await backend.answer(
                run_id,
                item=body["item"],
                agent=body["agent"],
                answer=body["answer"],
                by=body.get("by") or "the UI",
            )
        except AnswerRejected as rejected:
            return _reply(rejected.status, {"error": str(rejected)})
        return _reply(200, recorded)


def _body_problem(body: object) -> str | None:
    if not isinstance(body, dict):
        return 'the body must be a JSON object: {"item", "agent", "answer", "by"?}'
    for key in ("item", "agent"):
        if not isinstance(body.get(key), str) or not body[key]:
            return f"'{key}' must be a non-empty string"
    if "answer" not in body:
        return "'answer' is missing: the object the person filled in"
    if body.get("by") is not None and not isinstance(body["by"], str):
        return "'by' must be a string (who answers)"
    extra = set(body) - {"item", "agent", "answer", "by"}
    if extra:
        return f"unknown key(s) {sorted(extra)}: the body has item, agent, answer, by"
    return None
