"""What a pipeline file can make happen: only declared Tool classes, only its own prompt files.

* A plugin must be a class satisfying the Tool protocol, checked before it is
  called: `plugin: "os:system"` or a function that would write a canary is a
  clear error, and nothing is called.
* `agentflow verify --pipeline` and `agentflow serve` import nothing a pipeline
  names (a plugin module that writes a canary on import is never imported).
* Prompts are regular files under the pipeline's directory (symlinks resolved),
  at most 1 MiB, opened without blocking: absolute paths, `..` escapes,
  `/proc/self/environ`, `/dev/zero`, FIFOs and symlinks out are diagnostics at
  the prompt's YAML line and column.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from agentflow.compiler.diagnostics import CompileError
from agentflow.compiler.load import PROMPT_MAX_BYTES, load_pipeline
from agentflow.runtime import compile_spec, run_pipeline
from agentflow.runtime.cli.compiled_loader import (
    PipelineInvalidError,
    compile_and_import,
    load_for_inspection,
)
from agentflow.runtime.engine.runner import RunOptions
from agentflow.runtime.models.dry_run import DryRunModel
from agentflow.runtime.tools.registry import plugin_class_problem
from tests.sigint import default_sigint

PIPELINE = """\
name: trust
state_machine:
  initial: a
  terminal: [b]
  states:
    - id: a
    - id: b
{tools}agents:
  - id: w
    prompt: {prompt}
{agent_tools}    transitions:
      on_complete: b
"""

CANARY_FUNCTION = """\
from pathlib import Path


def boom(**config):
    Path(config["path"]).write_text("called")
"""

CANARY_ON_IMPORT = """\
from pathlib import Path

Path({path!r}).write_text("imported")


class Tool:
    id = "t"
    description = "d"
    input_schema = {{"type": "object"}}

    async def execute(self, input):
        return "ok"
"""


def _pipeline(
    directory: Path,
    *,
    plugin: str | None = None,
    config: dict[str, str] | None = None,
    prompt: str = "prompts/p.md",
    use_tool: bool = True,
) -> Path:
    (directory / "prompts").mkdir(exist_ok=True)
    (directory / "prompts" / "p.md").write_text("Work on {{ input }}.\n")
    tools = agent_tools = ""
    if plugin is not None:
        tools = f'tools:\n  - id: t\n    type: plugin\n    plugin: "{plugin}"\n'
        if config:
            tools += "    config:\n" + "".join(f'      {k}: "{v}"\n' for k, v in config.items())
        agent_tools = "    tools: [t]\n" if use_tool else ""
    path = directory / "trust.yaml"
    path.write_text(PIPELINE.format(tools=tools, prompt=prompt, agent_tools=agent_tools))
    return path


def _cli(*args: str, cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    env.pop("ANTHROPIC_API_KEY", None)
    return subprocess.run(
        [sys.executable, "-m", "agentflow.runtime.cli.main", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        env=env,
    )


# -- plugins ---------------------------------------------------------------------------


def test_a_plugin_function_is_refused_and_never_called(tmp_path: Path) -> None:
    (tmp_path / "canary_plugin.py").write_text(CANARY_FUNCTION)
    canary = tmp_path / "canary"
    path = _pipeline(tmp_path, plugin="canary_plugin:boom", config={"path": str(canary)})
    done = _cli(
        "run", str(path), "--model", "dry-run", "--no-ui", "--quiet",
        "--jsonl", str(tmp_path / "run.jsonl"), cwd=tmp_path, pythonpath=tmp_path,
    )  # fmt: skip
    assert not canary.exists()
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "plugin tool 't'" in done.stderr
    assert "'canary_plugin:boom' is a function, not a class" in done.stderr
    assert str(path) in done.stderr


def test_os_system_is_refused_and_runs_no_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    canary = tmp_path / "shell-canary"
    path = _pipeline(tmp_path, plugin="os:system", config={"command": f"touch {canary}"})
    with pytest.raises(PipelineInvalidError) as caught:
        compile_and_import(path)
    assert "plugin tool 't': 'os:system' is a function, not a class" in str(caught.value)
    assert str(path) in str(caught.value)
    done = _cli(
        "run", str(path), "--model", "dry-run", "--no-ui", "--quiet",
        "--jsonl", str(tmp_path / "run.jsonl"), cwd=tmp_path, pythonpath=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2, done.stderr
    assert not canary.exists()


def test_a_class_that_is_not_a_tool_is_refused_before_it_is_built(tmp_path: Path) -> None:
    canary = tmp_path / "popen-canary"
    path = _pipeline(tmp_path, plugin="subprocess:Popen", config={"args": f"touch {canary}"})
    with pytest.raises(PipelineInvalidError) as caught:
        compile_and_import(path)
    message = str(caught.value)
    assert "'subprocess:Popen' is the class subprocess.Popen" in message
    assert "(it has no async def execute(self, input))" in message
    assert not canary.exists()


def test_plugin_class_check() -> None:
    from agentflow.runtime.tools.examples import WordCountTool
    from agentflow.runtime.tools.filesystem import FilesystemTool

    assert plugin_class_problem(WordCountTool) is None
    assert plugin_class_problem(FilesystemTool) is None
    assert plugin_class_problem(os.system) == "is a function, not a class"
    assert plugin_class_problem(42) == "is a int value, not a class"

    class SyncExecute:
        id = "x"
        description = "x"
        input_schema: dict[str, object] = {}

        def execute(self, input: object) -> object:
            return input

    problem = plugin_class_problem(SyncExecute)
    assert problem is not None and "async def execute" in problem


def test_a_real_plugin_class_still_runs(tmp_path: Path) -> None:
    path = _pipeline(tmp_path, plugin="agentflow.runtime.tools.examples:WordCountTool")
    module = compile_and_import(path)
    (tool,) = [factory() for factory in module.compiled.plugin_tools.values()]
    assert tool.id == "my_tool"


# -- verify and serve import nothing -----------------------------------------------------


def _log_of(path: Path, log: Path) -> None:
    """A finished run of `path`, made without importing its plugins."""
    loaded = load_pipeline(path)
    trio.run(
        lambda: run_pipeline(
            compile_spec(loaded.spec, loaded.prompts, source_sha256=loaded.source_sha256),
            "topic",
            handlers=None,
            model=DryRunModel(),
            options=RunOptions(audit_log=str(log)),
        )
    )


def test_verify_with_a_pipeline_imports_no_plugin(tmp_path: Path) -> None:
    canary = tmp_path / "import-canary"
    (tmp_path / "import_canary.py").write_text(CANARY_ON_IMPORT.format(path=str(canary)))
    path = _pipeline(tmp_path, plugin="import_canary:Tool", use_tool=False)
    log = tmp_path / "run.jsonl"
    _log_of(path, log)
    assert not canary.exists()
    compiled = load_for_inspection(path)
    assert compiled.spec.name == "trust" and not compiled.plugin_tools
    done = _cli("verify", str(log), "--pipeline", str(path), cwd=tmp_path, pythonpath=tmp_path)
    assert not canary.exists(), done.stdout + done.stderr
    assert "Traceback" not in done.stderr


def test_serve_imports_no_plugin(tmp_path: Path) -> None:
    canary = tmp_path / "import-canary"
    (tmp_path / "import_canary.py").write_text(CANARY_ON_IMPORT.format(path=str(canary)))
    path = _pipeline(tmp_path, plugin="import_canary:Tool", use_tool=False)
    log = tmp_path / "run.jsonl"
    _log_of(path, log)
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    command = [sys.executable, "-m", "agentflow.runtime.cli.main", "serve", str(log)]
    with subprocess.Popen(
        [*command, "--pipeline", str(path), "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
        preexec_fn=default_sigint,  # a background CI job ignores SIGINT
    ) as server:
        try:
            assert server.stdout is not None
            lines = []
            for line in server.stdout:  # the server prints its URL once it listens
                lines.append(line)
                if "observability UI ->" in line:
                    break
            assert any("observability UI ->" in line for line in lines), lines
            assert not canary.exists()
        finally:
            server.send_signal(signal.SIGINT)
            server.communicate(timeout=30)
    assert not canary.exists()


# -- prompt files ------------------------------------------------------------------------


def _prompt_error(path: Path) -> tuple[int, int, str]:
    with pytest.raises(CompileError) as caught:
        load_pipeline(path)
    (error,) = caught.value.errors
    return error.line, error.column, error.message


PROMPT_LINE, PROMPT_COLUMN = 10, 13  # `    prompt: <here>` in PIPELINE


@pytest.mark.parametrize(
    ("prompt", "expected"),
    [
        ("/proc/self/environ", "is absolute"),
        ("/dev/zero", "is absolute"),
        ("/etc/passwd", "is absolute"),
        ("../outside.md", "leads outside the pipeline file's directory"),
        ("prompts/../../outside.md", "leads outside the pipeline file's directory"),
    ],
)
def test_prompt_paths_outside_the_directory_are_refused(
    prompt: str, expected: str, tmp_path: Path
) -> None:
    directory = tmp_path / "pipeline"
    directory.mkdir()
    (tmp_path / "outside.md").write_text("secret {{ input }}")
    line, column, message = _prompt_error(_pipeline(directory, prompt=prompt))
    assert (line, column) == (PROMPT_LINE, PROMPT_COLUMN)
    assert expected in message


@pytest.mark.parametrize("target", ["/proc/self/environ", "/dev/zero", "../../outside.md"])
def test_a_symlink_that_leaves_the_directory_is_refused(target: str, tmp_path: Path) -> None:
    directory = tmp_path / "pipeline"
    directory.mkdir()
    (tmp_path / "outside.md").write_text("secret {{ input }}")
    path = _pipeline(directory, prompt="prompts/link.md")
    (directory / "prompts" / "link.md").symlink_to(target)
    line, column, message = _prompt_error(path)
    assert (line, column) == (PROMPT_LINE, PROMPT_COLUMN)
    assert "leads outside the pipeline file's directory" in message


def test_a_symlink_inside_the_directory_is_followed(tmp_path: Path) -> None:
    path = _pipeline(tmp_path, prompt="prompts/link.md")
    (tmp_path / "prompts" / "link.md").symlink_to("p.md")
    assert load_pipeline(path).prompts["w"] == "Work on {{ input }}.\n"


def test_a_fifo_prompt_is_refused_without_blocking(tmp_path: Path) -> None:
    path = _pipeline(tmp_path, prompt="prompts/fifo.md")
    os.mkfifo(tmp_path / "prompts" / "fifo.md")
    done = subprocess.run(  # a hang would be a timeout, not a pass
        [sys.executable, "-m", "agentflow.compiler", str(path), "-o", str(tmp_path / "out")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert (
        f"trust.yaml:{PROMPT_LINE}:{PROMPT_COLUMN}: error: prompt 'prompts/fifo.md' is not a "
        "regular file (a FIFO, socket or device)"
    ) in done.stderr


def test_a_prompt_over_one_mebibyte_is_refused(tmp_path: Path) -> None:
    path = _pipeline(tmp_path, prompt="prompts/big.md")
    (tmp_path / "prompts" / "big.md").write_text("x" * (PROMPT_MAX_BYTES + 1))
    line, column, message = _prompt_error(path)
    assert (line, column) == (PROMPT_LINE, PROMPT_COLUMN)
    assert "larger than 1048576 bytes (1 MiB)" in message
    (tmp_path / "prompts" / "big.md").write_text("x" * PROMPT_MAX_BYTES)
    assert len(load_pipeline(path).prompts["w"]) == PROMPT_MAX_BYTES


def test_a_directory_prompt_is_refused(tmp_path: Path) -> None:
    path = _pipeline(tmp_path, prompt="prompts")
    line, column, message = _prompt_error(path)
    assert (line, column) == (PROMPT_LINE, PROMPT_COLUMN)
    assert "is a directory, not a file" in message
