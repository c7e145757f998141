"""choose_model / describe_model: which model a run gets, and how the banner names it."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.runtime.errors import AgentflowError, ModelError
from agentflow.runtime.models.anthropic import AnthropicModel
from agentflow.runtime.models.dry_run import DryRunModel
from agentflow.runtime.models.factory import (
    NoModelError,
    anthropic_model,
    choose_model,
    default_cassette,
    describe_model,
)
from agentflow.runtime.spec import (
    AgentSpec,
    DefaultsSpec,
    Loc,
    PipelineSpec,
    RetrySpec,
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
    from_yaml = choose_model(spec(base_url="http://127.0.0.1:8080"), model="anthropic")
    assert describe_model(from_yaml) == "live Claude via http://127.0.0.1:8080"
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


def test_auto_without_a_key_or_cassette_says_the_three_ways_out(
    no_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(NoModelError, match="no ANTHROPIC_API_KEY and no cassette path"):
        choose_model(spec(), model="auto")
    missing = tmp_path / "x.cassette.jsonl"
    with pytest.raises(NoModelError) as caught:
        choose_model(spec(source=str(tmp_path / "x.yaml")), model="auto", cassette=missing)
    message = str(caught.value)
    assert f"no ANTHROPIC_API_KEY and no cassette at {missing}" in message
    for fix in ("set ANTHROPIC_API_KEY", "--cassette", "--model dry-run"):
        assert fix in message.replace("Set", "set")
    assert isinstance(caught.value, AgentflowError) and not missing.exists()


def test_explicit_replay_of_a_missing_cassette_says_it_does_not_exist(
    no_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    with pytest.raises(ModelError, match=r"x\.cassette\.jsonl does not exist"):
        choose_model(spec(source=str(tmp_path / "x.yaml")), model="replay")


def test_dry_run_is_chosen_by_name_and_described_loudly(no_env: pytest.MonkeyPatch) -> None:
    no_env.setenv("ANTHROPIC_API_KEY", KEY)  # a key does not turn a dry run live
    model = choose_model(spec(), model="dry-run")
    assert isinstance(model, DryRunModel) and model.name == "dry-run"
    assert describe_model(model) == "DRY RUN: synthetic answers, no model is called"
    assert choose_model(spec(), model="dry-run", fail_first=2).fail_first == 2  # type: ignore[attr-defined]


def test_live_model_takes_retries_timeout_and_base_url_from_the_pipeline(
    no_env: pytest.MonkeyPatch,
) -> None:
    no_env.setenv("ANTHROPIC_API_KEY", KEY)
    pipeline = spec(base_url="http://localhost:8080").model_copy(
        update={"defaults": DefaultsSpec(base_url="http://localhost:8080", timeout_s=9.0,
                                         retry=RetrySpec(max_attempts=5))}
    )  # fmt: skip
    model = choose_model(pipeline, model="anthropic")
    assert isinstance(model, AnthropicModel)
    assert (model.max_retries, model.timeout_s) == (5, 9.0)
    assert model.base_url == "http://localhost:8080"
    assert anthropic_model(spec()).max_retries == RetrySpec().max_attempts


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


@pytest.mark.parametrize(
    "url",
    [
        "http://proxy.local:8080",
        "https://evil.example/v1",
        "https://api.anthropic.com.evil.example",
        "http://api.anthropic.com",  # the key in cleartext on the network
        "http://eu.anthropic.com:8080",
    ],
)
def test_a_pipeline_base_url_on_a_third_party_host_never_gets_the_key(
    no_env: pytest.MonkeyPatch, url: str
) -> None:
    # A shared pipeline file must not be able to send the user's key elsewhere.
    no_env.setenv("ANTHROPIC_API_KEY", KEY)
    with pytest.raises(ModelError, match=r"would send your ANTHROPIC_API_KEY") as caught:
        choose_model(spec(base_url=url), model="anthropic")
    assert f"set ANTHROPIC_BASE_URL={url}" in str(caught.value)
    assert KEY not in str(caught.value)
    no_env.setenv("ANTHROPIC_BASE_URL", url)  # the user's own environment confirms it
    assert describe_model(choose_model(spec(base_url=url), model="anthropic")) == (
        f"live Claude via {url}"
    )


@pytest.mark.parametrize(
    "url",
    [
        "https://api.anthropic.com",
        "http://127.0.0.1:1234",
        "http://[::1]:9",
        "https://eu.anthropic.com",
    ],
)
def test_a_pipeline_base_url_on_anthropic_or_this_machine_is_used(
    no_env: pytest.MonkeyPatch, url: str
) -> None:
    no_env.setenv("ANTHROPIC_API_KEY", KEY)
    assert describe_model(choose_model(spec(base_url=url), model="anthropic")) == (
        f"live Claude via {url}"
    )
