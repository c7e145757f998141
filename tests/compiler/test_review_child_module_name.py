"""Second reader, DSL v2 part 2: a sub-pipeline named like a module Python already has.

The parent's generated module imports its child by the child's module name
(`import enum as _pipeline_team`). A child named `enum` (or `json`, `typing`,
`pydantic`, ...) compiled, and then importing the parent's module from the output
directory failed ("partially initialized module 'enum'"), or bound the standard
library's module instead of the child.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.compiler.diagnostics import CompileError
from agentflow.compiler.load import load_pipeline

PARENT = """\
name: parent
agents:
  - id: team
    pipeline: team.yaml
"""


@pytest.mark.parametrize("child_name", ["enum", "json", "pydantic", "agentflow", "Typing"])
def test_a_child_named_like_an_importable_module_is_an_error(
    tmp_path: Path, child_name: str
) -> None:
    (tmp_path / "p.md").write_text("Do {{ input }}.\n")
    (tmp_path / "team.yaml").write_text(
        f"name: {child_name}\nagents:\n  - id: w\n    prompt: p.md\n"
    )
    (tmp_path / "parent.yaml").write_text(PARENT)
    with pytest.raises(CompileError) as caught:
        load_pipeline(tmp_path / "parent.yaml")
    module = child_name.lower()
    assert [d.message for d in caught.value.diagnostics] == [
        f"sub-pipeline 'team.yaml' is named '{child_name}', which gives module "
        f"'{module}.py', but '{module}' is a module Python already imports (the parent's "
        "module imports its child by that name); rename the sub-pipeline"
    ]
    assert (caught.value.diagnostics[0].line, caught.value.diagnostics[0].column) == (4, 15)


def test_a_child_with_its_own_name_compiles(tmp_path: Path) -> None:
    (tmp_path / "p.md").write_text("Do {{ input }}.\n")
    (tmp_path / "team.yaml").write_text(
        "name: research-team\nagents:\n  - id: w\n    prompt: p.md\n"
    )
    (tmp_path / "parent.yaml").write_text(PARENT)
    assert "team" in load_pipeline(tmp_path / "parent.yaml").children
