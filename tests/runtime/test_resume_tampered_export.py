"""A resume rebuilds a JSONL export that disagrees with the store, but never destroys the
evidence: an export with an edited (or extra) whole line is kept aside first, and the
`run_resumed` event names the copy. A merely lagging or torn export is not evidence of
anything and is repaired in place, as before."""

from __future__ import annotations

import json
from pathlib import Path

import trio

from agentflow.runtime.engine.resume import resume_run, set_aside_diverged_export
from agentflow.runtime.engine.runner import RunOptions
from agentflow.runtime.store import RunStore

from .resume_harness import SAFETY, check_log
from .test_engine_fakes import compile_dict, hello_spec
from .test_resume_api import RUN, Scripted, _cut, _scripts


async def test_an_edited_export_is_kept_aside_and_named_then_rebuilt(tmp_path: Path) -> None:
    with RunStore.open(str(tmp_path / "store.db")) as store:
        log = await _cut(store, tmp_path, hello_spec(), at=3)
        lines = log.read_text().splitlines(keepends=True)
        lines[2] = lines[2].replace('"attempt":1', '"attempt":7')  # someone edited a line
        edited = "".join(lines)
        log.write_text(edited)
        with trio.fail_after(SAFETY):
            result = await resume_run(
                compile_dict(hello_spec()), store, RUN, handlers=Scripted(_scripts()),
                model=None, options=RunOptions(backoff_scale=0, audit_log=log),
            )  # fmt: skip
        assert result.ok
        check_log(store, RUN, log)  # the log is the store again
        kept = tmp_path / "run.jsonl.diverged-1"
        assert kept.read_text() == edited  # the edited file, byte for byte
        resumed = [
            json.loads(line) for line in log.read_text().splitlines() if '"run_resumed"' in line
        ]
        assert resumed[0]["payload"]["export_set_aside"] == str(kept)


def test_a_lagging_or_torn_export_is_not_set_aside(tmp_path: Path) -> None:
    path = tmp_path / "x.jsonl"
    lines = ['{"seq":0}', '{"seq":1}', '{"seq":2}']
    path.write_text('{"seq":0}\n{"se')  # lags, ends in half a line
    assert set_aside_diverged_export(path, lines) is None
    path.write_text("")
    assert set_aside_diverged_export(path, lines) is None
    assert set_aside_diverged_export(tmp_path / "missing.jsonl", lines) is None
    path.write_text('{"seq":0}\n{"seq":1}\n{"seq":2}\n{"seq":3}\n')  # a line the store lacks
    first = set_aside_diverged_export(path, lines)
    assert first == tmp_path / "x.jsonl.diverged-1"
    path.write_text('{"seq":0}\n{"seq":9}\n')
    assert set_aside_diverged_export(path, lines) == tmp_path / "x.jsonl.diverged-2"
    assert first.read_text().endswith('{"seq":3}\n')  # an earlier copy is never overwritten
