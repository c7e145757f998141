"""agentflow for the shared peer harness (../shared/peers-bench): its fw_agentflow.py, adapted.

The harness's fw_agentflow.py imports `agentflow.runtime.runner`, which moved to
`agentflow.runtime.engine.runner`; this copy imports `RunOptions` from the public
`agentflow.runtime` instead, and its audit-log check counts each run's closing `log_sealed`
line (written after `RunResult.events` is counted). Otherwise it is the same script (same
workloads, counting and JSON output). bench/peers_harness.py runs the harness with this file
standing in for fw_agentflow.py. What follows is the harness file's own description.

agentflow: YAML pipelines compiled by `agentflowc` (at setup, outside timing), run on trio.

A: agentflow_pipelines/review_loop.yaml -- writer_agent --sequential--> reviewer_agent; a failing
   verdict is fed back to writer_agent (on_fail: feedback_and_retry); all_pass aggregation over
   the reviewer. retry.backoff_ms: 0 (no peer sleeps between attempts).
B: agentflow_pipelines/fanout.yaml -- orchestrator_agent --parallel_fan_out--> worker_agent
   --sequential--> qa_agent, one trio task per item under the fan-out's CapacityLimiter;
   all_pass aggregation gate over qa_agent.

Handlers subclass the generated module's `DefaultHandlers` and override every agent with a
coroutine that calls common.llm (no model is called). Each handler counts one node. The
aggregation is agentflow's built-in all_pass gate, not a user coroutine: run_b counts it as
the (2N+2)-th node only when the RunResult says the gate completed the run with every one of
the N items passed (the check the peers' aggregator node makes).

AF_AUDIT=1 (default): the JSONL audit log is on, the documented way: RunOptions(audit_log=PATH),
  one fixed PATH (a FileSink on a file truncated at the start of each run, as `agentflow run`
  rewrites <name>-run.jsonl), in a fresh temp dir under $TMPDIR (/tmp: ext4 here).
AF_AUDIT=append: sinks=[FileSink(PATH)], every run appending to one file (bench_runtime.py's way).
AF_AUDIT=0: no sink at all (the events are still encoded and hash-chained in memory; there is
  no switch for that).
AF_LIMIT: the fan-out concurrency limit for B. Default "n" = RunOptions(max_concurrency=N), i.e.
  unbounded like every peer's B; "default" = the pipeline default (16); or a number.
At exit the audit log is checked: its line count must equal RunResult.events of the last run
(AF_AUDIT=1) or the sum over all runs (AF_AUDIT=append); the script exits non-zero otherwise.
"""

import atexit
import os
import shutil
import subprocess
import sys
import tempfile
from importlib.metadata import version

import trio

# common.py is in the harness view this copy runs from (bench/peers_harness.py); already
# sys.path[0] there, but not when this file is run through a symlink.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import common
from common import NODES, llm

from agentflow.runtime import AgentContext, AgentOutput, QAIssue, RunOptions
from agentflow.runtime.sinks.file import FileSink

AUDIT_MODE = os.environ.get("AF_AUDIT", "1")
assert AUDIT_MODE in ("1", "append", "0"), AUDIT_MODE
AUDIT = AUDIT_MODE != "0"
LIMIT = os.environ.get("AF_LIMIT", "n")
NAME = (
    "agentflow"
    + {"1": "", "append": "[audit-append]", "0": "[no-audit]"}[AUDIT_MODE]
    + ("" if LIMIT == "n" else f"[limit={LIMIT}]")
)
VERSION = (
    f"agentflow {version('agentflow')} (trio {trio.__version__}, pydantic {version('pydantic')})"
)
RUNNER = trio.run

HERE = os.path.dirname(os.path.abspath(__file__))
PIPES = os.path.join(HERE, "agentflow_pipelines")
WORK = tempfile.mkdtemp(prefix="af-peer-")
atexit.register(shutil.rmtree, WORK, True)
AUDIT_LOG = os.path.join(WORK, "audit.jsonl") if AUDIT else None

# ---------------- setup: compile the YAML (not timed) ----------------
_agentflowc = os.path.join(os.path.dirname(sys.executable), "agentflowc")
subprocess.run(
    [_agentflowc, "review_loop.yaml", "fanout.yaml", "-o", WORK],
    cwd=PIPES,
    check=True,
    capture_output=True,
)
sys.path.insert(0, WORK)
import peer_fanout  # noqa: E402  (generated)
import peer_review_loop  # noqa: E402  (generated)

LAST = {"events": None, "total": 0, "runs": 0}


_OPTIONS = {}


def run_kwargs(max_concurrency=None):
    """options= (and sinks=) for one run in the selected audit mode; RunOptions are reused."""
    options = _OPTIONS.get(max_concurrency)
    if options is None:
        audit_log = AUDIT_LOG if AUDIT_MODE == "1" else None
        options = _OPTIONS[max_concurrency] = RunOptions(
            audit_log=audit_log, max_concurrency=max_concurrency
        )
    if AUDIT_MODE == "append":  # a FileSink is closed when its run ends: one per run
        return {"options": options, "sinks": (FileSink(AUDIT_LOG),)}
    return {"options": options}


# ---------------- Workload A ----------------
class ReviewHandlers(peer_review_loop.DefaultHandlers):
    async def writer_agent(self, ctx: AgentContext) -> AgentOutput:
        NODES[0] += 1
        feedback = [issue.message for issue in ctx.feedback]
        draft = await llm(f"write {ctx.input} feedback={feedback}")
        return AgentOutput(text=draft)

    async def reviewer_agent(self, ctx: AgentContext) -> AgentOutput:
        NODES[0] += 1
        await llm(f"review {ctx.upstream.text}")
        if ctx.attempt < common.PASS_AT:
            return AgentOutput(passed=False, issues=[QAIssue(message="too short")])
        return AgentOutput(passed=True)


HANDLERS_A = ReviewHandlers()


async def run_a():
    result = await peer_review_loop.run("essay", handlers=HANDLERS_A, **run_kwargs())
    assert result.ok and result.final_state == "complete", result.reason
    assert result.items[0].attempts["reviewer_agent"] == common.PASS_AT
    LAST["events"] = result.events
    LAST["total"] += result.events
    LAST["runs"] += 1
    return result


# ---------------- Workload B ----------------
class FanHandlers(peer_fanout.DefaultHandlers):
    async def orchestrator_agent(self, ctx: AgentContext) -> AgentOutput:
        NODES[0] += 1
        await llm("plan")
        return AgentOutput(text="plan", items=list(range(ctx.input["n"])))

    async def worker_agent(self, ctx: AgentContext) -> AgentOutput:
        NODES[0] += 1
        return AgentOutput(text=await llm(f"work {ctx.item.payload}"))

    async def qa_agent(self, ctx: AgentContext) -> AgentOutput:
        NODES[0] += 1
        await llm(f"qa {ctx.upstream.text}")
        return AgentOutput(passed=True)


HANDLERS_B = FanHandlers()


def limit_b(n):
    limit = None if LIMIT == "default" else (n if LIMIT == "n" else int(LIMIT))
    return max(1, limit) if limit else None


async def run_b(n):
    result = await peer_fanout.run(
        {"n": n}, handlers=HANDLERS_B, **run_kwargs(max_concurrency=limit_b(n))
    )
    children = result.items[1:]
    ok = (
        result.ok
        and result.final_state == "complete"
        and len(children) == n
        and all(c.status == "passed" for c in children)
    )
    if ok:
        NODES[0] += 1  # the all_pass aggregation gate decided `complete` over all N items
    LAST["events"] = result.events
    LAST["total"] += result.events
    LAST["runs"] += 1
    return ok


def check_audit_log():
    """The audit log must hold exactly the runs' events (one JSON line each): the last run's
    (AF_AUDIT=1, truncated each run) or every run's (AF_AUDIT=append)."""
    if AUDIT_LOG is None:
        return
    with open(AUDIT_LOG, "rb") as f:
        lines = sum(1 for _ in f)
    # Each run's log ends with its `log_sealed` line, written as the hub closes, after the
    # RunResult (and its event count) was built: one line more per run than RunResult.events.
    want = LAST["total"] + LAST["runs"] if AUDIT_MODE == "append" else LAST["events"] + 1
    if lines != want:
        sys.exit(f"audit log {AUDIT_LOG}: {lines} lines, but the runs reported {want} with seals")
    print(f"audit log ok: {lines} lines = RunResult.events + log_sealed", file=sys.stderr)


if __name__ == "__main__":
    common.main(sys.modules[__name__])
    check_audit_log()
