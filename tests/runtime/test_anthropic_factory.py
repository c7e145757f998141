"""choose_model / describe_model: which model a run gets, and how the banner names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.runtime.errors import ModelError
from agentflow.runtime.models.anthropic import AnthropicModel
from agentflow.runtime.models.factory import choose_model, default_cassette, describe_model
from agentflow.runtime.spec import (
    AgentSpec,
    DefaultsSpec,
    Loc,
    PipelineSpec,
    StateMachineSpec,
    StateSpec,
)

KEY = "sk-ant-api03-FACTORY-FAKE-KEY-0c1d"


def spec(*, base_url: str | None = None, source: str | None = None) -> PipelineSpec:
    return PipelineSpec(
        name="t",
        defaults=DefaultsSpec(base_url=base_url, timeout_s=7.5),
        state_machine=StateMachineSpec(
            initial="start",
            terminal=("done",),
            states=(StateSpec(id="start"), StateSpec(id="done")),
        ),
        agents=(AgentSpec(id="a", prompt="a.md"),),
        loc=Loc(file=source, line=1) if source else None,
    )


@pytest.fixture
def no_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    return monkeypatch


def test_auto_is_live_claude_when_a_key_is_set(no_env: pytest.MonkeyPatch) -> None:
    no_env.setenv("ANTHROPIC_API_KEY", KEY)
    model = choose_model(spec(), model="auto")
    assert isinstance(model, AnthropicModel)
    assert model.timeout_s == 7.5
    assert describe_model(model) == "live Claude via https://api.anthropic.com"
    assert KEY not in describe_model(model) and KEY not in repr(model)


def test_base_url_env_wins_over_the_pipeline_default(no_env: pytest.MonkeyPatch) -> None:
    no_env.setenv("ANTHROPIC_API_KEY", KEY)
    from_yaml = choose_model(spec(base_url="http://proxy.local:8080"), model="anthropic")
    assert describe_model(from_yaml) == "live Claude via http://proxy.local:8080"
    no_env.setenv("ANTHROPIC_BASE_URL", "http://127.0.0.1:9999")
    from_env = choose_model(spec(base_url="http://proxy.local:8080"), model="anthropic")
    assert describe_model(from_env) == "live Claude via http://127.0.0.1:9999"


def test_live_without_a_key_says_how_to_fix_it(no_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelError, match=r"ANTHROPIC_API_KEY.*replay"):
        choose_model(spec(), model="anthropic")


def test_default_cassette_sits_next_to_the_yaml() -> None:
    assert default_cassette(spec(source="pipelines/hello_world.yaml")) == Path(
        "pipelines/hello_world.cassette.jsonl"
    )
    assert default_cassette(spec()) is None


def test_auto_without_a_key_replays_and_needs_a_cassette(
    no_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ModelError, match="--cassette"):
        choose_model(spec(), model="auto")
    missing = tmp_path / "x.cassette.jsonl"
    with pytest.raises(ModelError, match=r"x\.cassette\.jsonl does not exist"):
        choose_model(spec(source=str(tmp_path / "x.yaml")), model="auto")
    assert not missing.exists()


def test_auto_without_a_key_replays_the_cassette_next_to_the_yaml(
    no_env: pytest.MonkeyPatch,
) -> None:
    root = Path(__file__).resolve().parents[2]
    model = choose_model(spec(source=str(root / "pipelines" / "hello_world.yaml")))
    assert model.name == "replay"
    description = describe_model(model)
    assert description.startswith("OFFLINE REPLAY of ")
    assert description.endswith("hello_world.cassette.jsonl — no model is called")
    replay_log = root / "pipelines" / "seed_minimal.cassette.jsonl"
    from_log = choose_model(spec(), model="replay", replay_log=replay_log)
    assert str(replay_log) in describe_model(from_log)
