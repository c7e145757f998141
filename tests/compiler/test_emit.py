"""The emitter: module shape, consistency with the IR, safety against hostile YAML text."""

from __future__ import annotations

import ast
import enum
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentflow.compiler.emit import EmitError, emit_module, module_name
from agentflow.compiler.load import load_pipeline
from agentflow.compiler.pysource import py_str
from agentflow.runtime.pipeline import CompiledPipeline, declared_triggers, derive_transitions
from agentflow.runtime.spec import (
    AgentSpec,
    DispatchSpec,
    OnFailSpec,
    PipelineSpec,
    StateMachineSpec,
    StateSpec,
    ToolSpec,
    TransitionsSpec,
)

from .emit_helpers import ROOT, HandLoaded, import_source, import_with_children, pipeline_files

HOSTILE = 'a"""b\'\'\'c\\d\n{{ e }}\r\u2028 \x00 é 😀 # f\\n""" + __import__("os").system("x")'


def small_spec(name: str = "small", **agent_fields: object) -> PipelineSpec:
    return PipelineSpec(
        name=name,
        state_machine=StateMachineSpec(
            initial="start",
            terminal=("done",),
            states=(StateSpec(id="start"), StateSpec(id="done")),
        ),
        agents=(
            AgentSpec(id="first", prompt="p/first.md", **agent_fields),  # type: ignore[arg-type]
            AgentSpec(id="second", prompt="p/second.md"),
        ),
    )


@pytest.fixture(autouse=True)
def _at_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.mark.parametrize("path", pipeline_files())
def test_example_module_matches_its_ir(path: str, tmp_path: Path) -> None:
    loaded = load_pipeline(path)
    module = import_with_children(loaded, f"gen_{module_name(loaded.spec)}", tmp_path)
    spec = loaded.spec
    assert spec == module.PIPELINE
    assert [s.value for s in module.State] == [s.id for s in spec.state_machine.states]
    assert module.INITIAL is module.State(spec.state_machine.initial)
    assert {module.State(t) for t in spec.state_machine.terminal} == module.TERMINAL
    assert [t.value for t in module.Trigger] == [t for t, _ in declared_triggers(spec)]
    assert [a.value for a in module.AgentId] == [a.id for a in spec.agents]
    assert module.ENTRY.value == spec.entry_agent
    rows = [(s.value, t.value, d.value) for (s, t), d in module.TRANSITIONS.items()]
    assert rows == derive_transitions(spec)
    assert dict(module.PROMPTS) == loaded.prompts
    compiled = module.COMPILED
    assert isinstance(compiled, CompiledPipeline)
    assert compiled.spec is module.PIPELINE and compiled.transitions is module.TRANSITIONS
    assert compiled.source_path == path and compiled.source_sha256 == loaded.source_sha256
    for agent in spec.agents:
        method = getattr(module.DefaultHandlers(), agent.id)
        how = "'s handler function" if agent.handler is not None else " from its prompt"
        how = "'s sub-pipeline" if agent.pipeline is not None else how
        if agent.human is not None:
            assert method.__doc__.startswith("Ask a person; the item waits")
            continue
        assert method.__doc__.startswith(f"Run {agent.id}{how}")


def test_transitions_and_prompts_are_read_only(tmp_path: Path) -> None:
    module = import_source(emit_module(load_pipeline("pipelines/hello_world.yaml")), "g", tmp_path)
    key = next(iter(module.TRANSITIONS))
    with pytest.raises(TypeError):
        module.TRANSITIONS[key] = module.State.FAILED
    with pytest.raises(TypeError):
        module.PROMPTS["writer_agent"] = "hijacked"
    assert module.TRANSITIONS[key] is not module.State.FAILED or key[1].value.endswith("abort")


def test_plugin_tools_are_built_from_yaml_config(tmp_path: Path) -> None:
    module = import_source(emit_module(load_pipeline("pipelines/seed_minimal.yaml")), "m", tmp_path)
    tools = module.plugin_tools()
    assert list(tools) == ["my_tool"]
    assert type(tools["my_tool"]).__name__ == "WordCountTool"
    assert tools["my_tool"].api_key_env == "MY_API_KEY"
    assert module.plugin_tools()["my_tool"] is not tools["my_tool"]  # fresh instances
    assert module.COMPILED.plugin_tools is module.PLUGIN_TOOLS


def test_pipeline_without_triggers_gets_the_placeholder_member(tmp_path: Path) -> None:
    source = emit_module(HandLoaded(small_spec(), {"first": "one", "second": "two"}))
    module = import_source(source, "notrig", tmp_path)
    assert [t.name for t in module.Trigger] == ["_NONE"]
    assert dict(module.TRANSITIONS) == {}
    assert module.COMPILED.trigger("first", "on_start") is None
    assert dict(module.PLUGIN_TOOLS) == {} and module.plugin_tools() == {}


def test_only_non_default_fields_are_written_and_loc_never(tmp_path: Path) -> None:
    source = emit_module(load_pipeline("pipelines/hello_world.yaml"))
    pipeline_src = source[source.index("PIPELINE: Final") : source.index("class Handlers")]
    assert "loc=" not in pipeline_src
    assert "version=" not in pipeline_src  # "0.1.0" is the default
    assert "RetrySpec(max_attempts=2, backoff_ms=200)" in pipeline_src
    assert "model=" not in pipeline_src.split("agents=")[1]  # agents inherit the default model


def test_emitting_twice_gives_the_same_bytes() -> None:
    for path in pipeline_files():
        assert emit_module(load_pipeline(path)) == emit_module(load_pipeline(path))


def test_output_does_not_depend_on_the_hash_seed() -> None:
    code = (
        "import sys; from agentflow.compiler.load import load_pipeline;"
        "from agentflow.compiler.emit import emit_module;"
        "sys.stdout.write(''.join(emit_module(load_pipeline(p)) for p in sys.argv[1:]))"
    )
    outputs = set()
    for seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        run = subprocess.run(
            [sys.executable, "-c", code, *pipeline_files()],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
            env=env,
        )
        outputs.add(run.stdout)
    assert len(outputs) == 1


def test_output_is_ruff_format_stable(tmp_path: Path) -> None:
    ruff = Path(sys.executable).parent / "ruff"
    if not ruff.exists():
        pytest.skip("ruff is not installed next to this interpreter")
    hostile = small_spec(
        name=HOSTILE, transitions=TransitionsSpec(on_start="done"), tools=("t",)
    ).model_copy(update={"tools": (ToolSpec(id="t", type="builtin", description=HOSTILE),)})
    cases = sorted(p.relative_to(ROOT).as_posix() for p in ROOT.glob("tests/golden/cases/*/*.yaml"))
    sources = [emit_module(load_pipeline(p)) for p in [*pipeline_files(), *cases]]
    sources.append(emit_module(HandLoaded(hostile, {"first": HOSTILE, "second": "x" * 300})))
    for source in sources:
        formatted = subprocess.run(
            [str(ruff), "format", "--isolated", "--line-length", "100", "-"],
            input=source,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert formatted == source


def test_hostile_text_from_yaml_stays_data(tmp_path: Path) -> None:
    """Quotes, newlines, triple quotes, backslashes, {{ and unicode cannot become code."""
    spec = small_spec(
        name=HOSTILE, model=HOSTILE, transitions=TransitionsSpec(on_start="done")
    ).model_copy(
        update={
            "version": HOSTILE,
            "tools": (
                ToolSpec(id="t", type="builtin", description=HOSTILE, config={"root": HOSTILE}),
            ),
        }
    )
    prompts = {"first": HOSTILE, "second": HOSTILE * 3}
    source = emit_module(HandLoaded(spec, prompts, source_path=HOSTILE, source_sha256=HOSTILE))
    tree = ast.parse(source)
    names = {n.id for n in ast.walk(tree) if isinstance(n, ast.Name)}
    assert "__import__" not in names and "os" not in names
    calls = {ast.unparse(n.func) for n in ast.walk(tree) if isinstance(n, ast.Call)}
    assert not any("import" in c or "system" in c for c in calls)
    module = import_source(source, "hostile", tmp_path)
    assert spec == module.PIPELINE
    assert dict(module.PROMPTS) == prompts
    assert HOSTILE.replace("\\", "/") == module.SOURCE_PATH  # paths are written POSIX-style
    assert module.SOURCE_SHA256 == HOSTILE
    assert repr(HOSTILE) in module.__doc__


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(name=st.text(min_size=1).filter(lambda s: module_name_ok(s)), prompt=st.text())
def test_any_text_round_trips(name: str, prompt: str) -> None:
    spec = small_spec(name=name)
    source = emit_module(HandLoaded(spec, {"first": prompt, "second": name}))
    namespace: dict[str, object] = {"__name__": "hypo"}
    sys.modules["hypo"] = type(sys)("hypo")
    try:
        exec(compile(source, "hypo", "exec"), namespace)
    finally:
        sys.modules.pop("hypo", None)
    assert namespace["PIPELINE"] == spec
    assert dict(namespace["PROMPTS"]) == {"first": prompt, "second": name}  # type: ignore[call-overload]


def module_name_ok(name: str) -> bool:
    try:
        module_name(small_spec(name=name))
    except EmitError:
        return False
    return True


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("hello-world", "hello_world"),
        ("my-pipeline", "my_pipeline"),
        ("Research Fan-Out", "research_fan_out"),
    ],
)
def test_module_name(name: str, expected: str) -> None:
    assert module_name(small_spec(name=name)) == expected


@pytest.mark.parametrize("name", ["9lives", "---", "🚀"])
def test_module_name_rejects_names_with_no_identifier(name: str) -> None:
    with pytest.raises(EmitError, match="no valid Python module name"):
        module_name(small_spec(name=name))


def test_emit_refuses_ids_that_are_python_keywords() -> None:
    spec = small_spec().model_copy(
        update={"agents": (AgentSpec(id="class", prompt="p.md"), AgentSpec(id="ok", prompt="q"))}
    )
    with pytest.raises(EmitError, match="'class' cannot be used as a Python name"):
        emit_module(HandLoaded(spec, {"class": "", "ok": ""}))


def test_emit_refuses_a_malformed_plugin_path() -> None:
    tool = ToolSpec(id="x", type="plugin", plugin="os.system('rm'):X")
    spec = small_spec().model_copy(update={"tools": (tool,)})
    with pytest.raises(EmitError, match=r"not 'package\.module:Class'"):
        emit_module(HandLoaded(spec, {"first": "", "second": ""}))


def test_plugin_class_names_that_clash_are_aliased(tmp_path: Path) -> None:
    tools = (
        ToolSpec(id="a", type="plugin", plugin="agentflow.runtime.tools.examples:WordCountTool"),
        ToolSpec(id="b", type="plugin", plugin="tests.compiler.emit_helpers:HandLoaded"),
        ToolSpec(id="c", type="plugin", plugin="enum:Enum"),
    )
    spec = small_spec().model_copy(update={"tools": tools})
    source = emit_module(HandLoaded(spec, {"first": "", "second": ""}))
    assert "from agentflow.runtime.tools.examples import WordCountTool\n" in source
    assert "from enum import Enum\n" in source
    tools_alias = ToolSpec(id="s", type="plugin", plugin="enum:State")  # clashes with class State
    spec = small_spec().model_copy(update={"tools": (tools_alias,)})
    source = emit_module(HandLoaded(spec, {"first": "", "second": ""}))
    assert "from enum import State as _State_s\n" in source
    assert "return _State_s()" in source
    # A plugin named like a spec class or the Pipeline API must not shadow them.
    for name in ("ToolSpec", "Pipeline", "pipeline"):
        tool = ToolSpec(id="t", type="plugin", plugin=f"mypkg.tools:{name}")
        spec = small_spec().model_copy(update={"tools": (tool,)})
        source = emit_module(HandLoaded(spec, {"first": "", "second": ""}))
        assert f"from mypkg.tools import {name} as _{name}_t\n" in source


def test_missing_prompt_text_is_an_emit_error() -> None:
    with pytest.raises(EmitError, match="no prompt text for agent 'second'"):
        emit_module(HandLoaded(small_spec(), {"first": ""}))


def test_qa_and_dispatch_are_described_in_handler_docstrings(tmp_path: Path) -> None:
    spec = small_spec(
        dispatch=DispatchSpec(strategy="sequential", target="second"),
    ).model_copy()
    agents = (
        spec.agents[0],
        AgentSpec(
            id="second",
            prompt="p/second.md",
            on_fail=OnFailSpec(action="feedback_and_retry", target="first"),
        ),
    )
    spec = spec.model_copy(update={"agents": agents})
    module = import_source(
        emit_module(HandLoaded(spec, {"first": "", "second": ""})), "d", tmp_path
    )
    assert "Dispatch: sequential -> second." in module.DefaultHandlers.first.__doc__
    assert (
        "feedback_and_retry -> first (at most 3 attempts" in module.DefaultHandlers.second.__doc__
    )
    assert issubclass(module.State, enum.Enum)


def test_py_str_prefers_double_quotes_and_round_trips() -> None:
    assert py_str("abc") == '"abc"'
    assert py_str('say "hi"') == "'say \"hi\"'"
    for text in ["it's", "both ' and \"", "\\", "\n\t\x00", "😀\u2028"]:
        assert ast.literal_eval(py_str(text)) == text
