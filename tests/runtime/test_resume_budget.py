"""A run its budget stopped (status `cancelled`, so resumable) resumed with the same
budget: the budget continues from the recorded usage, and no model call is made only
to be over it again (the real SDK against the fake Anthropic API)."""

from __future__ import annotations

import json
from pathlib import Path

import trio

from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.models.anthropic import AnthropicModel
from agentflow.runtime.store import RunStore
from tests.fake_anthropic.server import RecordedRequest, open_fake_anthropic, text_reply

from .resume_harness import check_log, resume, start_run

KEY = "sk-ant-api03-RESUME-BUDGET-FAKE-KEY-7d1e"
RUN = "run-0000000b0d9e"
PIPELINE = """\
name: budgeted
defaults:
  max_total_tokens: 100
agents:
  - id: researcher
    instructions: Research {{ input }}.
    dispatch: {strategy: sequential, target: writer}
  - id: writer
    instructions: Write about {{ upstream }}.
"""


def _answer(request: RecordedRequest) -> object:
    return text_reply("nurseries", usage={"input_tokens": 90, "output_tokens": 30})


async def test_a_run_stopped_by_its_budget_resumes_without_calling_the_model_again(
    tmp_path: Path,
) -> None:
    path = tmp_path / "budgeted.yaml"
    path.write_text(PIPELINE)
    module = compile_and_import(path)
    log = tmp_path / "run.jsonl"
    async with open_fake_anthropic(_answer) as fake:
        with RunStore.open(str(tmp_path / "store.db")) as store:
            async with AnthropicModel(api_key=KEY, base_url=fake.base_url) as model:
                first = await start_run(
                    store, module.compiled, module.default_handlers(), RUN, log, "trio",
                    model=model,
                )  # fmt: skip
                assert first is not None and first.status == "cancelled"
                assert first.reason is not None and "max_total_tokens=100" in first.reason
                assert len(fake.requests) == 1  # the researcher's turn: 120 tokens
                with trio.fail_after(60):
                    result = await resume(
                        store, module.compiled, module.default_handlers(), RUN, log,
                        model=model,
                    )  # fmt: skip
            assert len(fake.requests) == 1  # the writer's call was not made
            assert result.status == "cancelled"
            assert result.reason is not None and "spent 120" in result.reason
            assert result.usage.total_tokens == 120  # the recorded usage, charged once
            check_log(store, RUN, log)
            kinds = [json.loads(line)["kind"] for line in log.read_text().splitlines()]
            assert kinds.count("budget_exceeded") == 2  # one per segment
            assert kinds.count("model_request") == 1
