"""Where a run's rate-limit caps and model-call cap come from: YAML defaults, CLI flags, code."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.compiler.diagnostics import CompileError
from agentflow.compiler.load import LoadedPipeline, load_pipeline_text
from agentflow.runtime.cli.commands import _choose_model
from agentflow.runtime.cli.main import build_parser
from agentflow.runtime.errors import ModelError
from agentflow.runtime.models.anthropic import AnthropicModel
from agentflow.runtime.models.factory import anthropic_model, choose_model
from agentflow.runtime.models.rate_limit import RateLimiter
from agentflow.runtime.pipeline import compile_spec

from ..cli.test_agentflow_cli import agentflow

KEY = "sk-ant-api03-SETTINGS-FAKE-KEY-77aa"

YAML = """\
name: limits
defaults:
{defaults}
agents:
  - id: writer_agent
    prompt: p.md
"""


def load(tmp_path: Path, defaults: str) -> LoadedPipeline:
    (tmp_path / "p.md").write_text("Write about {{ input }}.\n")
    text = YAML.format(defaults=defaults)
    (tmp_path / "limits.yaml").write_text(text)
    return load_pipeline_text(text, str(tmp_path / "limits.yaml"), tmp_path)


def caps(model: object) -> tuple[int | None, int | None]:
    assert isinstance(model, AnthropicModel)
    limiter = model.rate_limiter
    return limiter.max_requests_per_minute, limiter.max_tokens_per_minute


def test_yaml_defaults_set_the_live_models_caps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    loaded = load(tmp_path, "  max_requests_per_minute: 50\n  max_tokens_per_minute: 40000")
    spec = loaded.spec
    assert caps(anthropic_model(spec)) == (50, 40_000)
    # A flag (the key's owner) wins over the pipeline file, cap by cap.
    assert caps(choose_model(spec, model="anthropic", max_requests_per_minute=20)) == (20, 40_000)


def test_no_caps_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    spec = load(tmp_path, "  max_tokens: 100").spec
    assert caps(anthropic_model(spec)) == (None, None)


def test_a_cap_below_one_is_a_compile_error_at_its_line(tmp_path: Path) -> None:
    with pytest.raises(CompileError) as caught:
        load(tmp_path, "  max_tokens: 100\n  max_requests_per_minute: 0")
    shown = str(caught.value)
    assert "max_requests_per_minute" in shown
    assert "limits.yaml:4" in shown


def test_the_run_flags_reach_the_model_and_the_run_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
    loaded = load(tmp_path, "  max_requests_per_minute: 50")
    flags = ["--max-rpm", "30", "--max-tpm", "90000", "--max-model-calls", "12"]
    args = build_parser().parse_args(
        ["run", str(tmp_path / "limits.yaml"), "--model", "anthropic", *flags]
    )
    assert args.max_model_calls == 12
    compiled = compile_spec(loaded.spec, loaded.prompts)
    model = _choose_model(args, tmp_path / "limits.yaml", compiled)
    assert caps(model) == (30, 90_000)


def test_a_flag_below_one_is_a_usage_error(tmp_path: Path) -> None:
    for flag in ("--max-rpm", "--max-tpm", "--max-model-calls"):
        done = agentflow("run", "x.yaml", flag, "0", "--no-ui", cwd=tmp_path)
        assert done.returncode == 2
        assert f"argument {flag}: 0 must be 1 or more" in done.stderr


def test_a_limiter_and_caps_together_are_refused() -> None:
    with pytest.raises(ModelError, match="either rate_limiter= or max_requests_per_minute="):
        AnthropicModel(api_key=KEY, rate_limiter=RateLimiter(), max_requests_per_minute=5)
