"""A resume with `allow_changed` of a run whose prompt was edited: a recorded model turn
whose request no longer matches is not served; it goes live and is counted (the real
SDK against the fake Anthropic API)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import trio

from agentflow.runtime.cli.compiled_loader import compile_and_import
from agentflow.runtime.engine.resume import open_resume
from agentflow.runtime.engine.runner import RunOptions
from agentflow.runtime.models.anthropic import AnthropicModel
from agentflow.runtime.store import RunStore
from tests.fake_anthropic.server import open_fake_anthropic, text_reply, tool_reply

from .resume_harness import SAFETY, check_log, start_run
from .test_resume_model import KEYLINE, TOOLS, CountingTool, _Interrupting, _keys

KEY = "sk-ant-api03-RESUME-CHANGED-FAKE-KEY-5a2c"
RUN = "run-00000000c4a9"


async def test_an_edited_prompts_recorded_turn_goes_live_and_is_counted(tmp_path: Path) -> None:
    path = tmp_path / "noted.yaml"
    path.write_text(TOOLS.format(keyline=KEYLINE))
    before = compile_and_import(path)
    script = _Interrupting(
        {
            ("researcher", 1): tool_reply("notes", {"name": "trio"}, tool_id="toolu_1"),
            ("researcher", 2): text_reply("nurseries own tasks"),
            ("writer", 1): text_reply("A nursery owns its tasks."),
        }
    )
    log = tmp_path / "run.jsonl"
    async with open_fake_anthropic(script) as fake:
        with RunStore.open(str(tmp_path / "store.db")) as store:
            async with AnthropicModel(api_key=KEY, base_url=fake.base_url) as model:
                script.cut, script.scope = ("researcher", 2), trio.CancelScope()
                cut = await start_run(
                    store, before.compiled, before.default_handlers(), RUN, log, "trio",
                    scope=script.scope, model=model, tools={"notes": CountingTool()},
                )  # fmt: skip
                assert cut is None
                assert set(store.memo(RUN).model_calls) == {("researcher", "main", 1, 1)}
                path.write_text(path.read_text().replace("Research", "Study"))
                after = compile_and_import(path)
                sent = len(fake.requests)
                tool = CountingTool()
                with trio.fail_after(SAFETY):
                    resumption = await open_resume(
                        after.compiled, store, RUN, allow_changed=True,
                        options=RunOptions(backoff_scale=0, audit_log=log),
                    )  # fmt: skip
                    result = await resumption.run(
                        handlers=after.default_handlers(), model=model, tools={"notes": tool}
                    )
            assert result.ok
            stats = resumption.stats
            assert (stats.request_mismatches, stats.turns_served) == (1, 0)
            # The changed turn 1 was asked again, with the edited prompt.
            assert _keys(fake.requests[sent:]) == Counter(
                {
                    ("researcher", "main", 1, 1): 1,
                    ("researcher", "main", 1, 2): 1,
                    ("writer", "main", 1, 1): 1,
                }
            )
            assert "Study trio" in str(fake.requests[sent].body.get("system"))
            check_log(store, RUN, log)
