"""Prompt templates cannot build huge values, at compile time or when rendered.

jinja2 folds constant expressions while it compiles a template, so before the
`PromptSandbox`, `{{ 'x' * 10**10 }}` in a prompt file made `agentflowc` itself
allocate 10 GB (it was killed by the OOM killer after 70 s here).
"""

from __future__ import annotations

import resource
import subprocess
import sys

import pytest

from agentflow.compiler.prompt_checks import template_problems
from agentflow.runtime.engine.prompting import PromptRenderer, PromptRenderError

BOMBS = [
    "{{ 'x' * 10**10 }}",
    "{{ 10000000000 * 'x' }}",
    "{{ [0] * 10000000000 }}",
    "{{ 9**(9**9) }}",
    "{{ 'x'|center(10000000000) }}",
    "{{ 'x'|indent(10000000000) }}",
    "{{ '%999999999d' % 1 }}",
    "{{ '%(a)999999999s' % {'a': 1} }}",
    "{{ '%*d' % (1000000000, 1) }}",
    "{{ '{:>999999999}'.format(1) }}",
    "{{ '%999999999s'|format(1) }}",
    "{{ ('x' * 1000)|replace('', 'y' * 1000) }}",
    "{{ [1]|batch(10000000000, 0)|list }}",
    "{{ [1, 2]|slice(10000000000, 0)|list }}",
]


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (2 * 1024**3, 2 * 1024**3))


def test_compiling_and_rendering_bombs_stays_small() -> None:
    # In a child capped at 2 GB of address space: any of these folded or rendered
    # naively would raise MemoryError or be killed there.
    code = (
        "import sys\n"
        "from agentflow.compiler.prompt_checks import template_problems\n"
        "from agentflow.runtime.engine.prompting import PromptRenderer, PromptRenderError\n"
        "for bomb in sys.argv[1:]:\n"
        "    assert template_problems(bomb) == [], bomb\n"
        "    try:\n"
        "        PromptRenderer({'a': bomb}).render('a', {})\n"
        "    except PromptRenderError as exc:\n"
        "        assert 'at most 1,000,000' in str(exc) or \"'*' width\" in str(exc), exc\n"
        "    else:\n"
        "        raise AssertionError(f'rendered: {bomb}')\n"
        "print('ok')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *BOMBS],
        capture_output=True,
        text=True,
        preexec_fn=_limited,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "ok"


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ("{{ '=' * 8 }}", "========"),
        ("{{ 2**10 }}|{{ 9**9**9 }}", "1024|" + str((9**9) ** 9)),
        ("{{ 'a'|center(5) }}", "  a  "),
        ("{{ '%5d' % 3 }}|{{ 7 % 3 }}", "    3|1"),
        ("{{ '{:>4}'.format('x') }}", "   x"),
        ("{{ 'a b'|replace(' ', '_') }}", "a_b"),
        ("{{ [1, 2, 3]|batch(2)|list }}", "[[1, 2], [3]]"),
        ("{{ 'a'|indent(2, first=True) }}", "  a"),
    ],
)
def test_ordinary_templates_render_as_before(template: str, expected: str) -> None:
    assert template_problems(template) == []
    assert PromptRenderer({"a": template}).render("a", {}) == expected


def test_the_refusal_names_the_operation() -> None:
    with pytest.raises(PromptRenderError, match=r"repeating a sequence .* at most 1,000,000"):
        PromptRenderer({"a": "{{ 'ab' * 600000 }}"}).render("a", {})


def test_a_loop_repeating_a_large_value_stops_at_the_rendered_size_cap() -> None:
    # each operation is under the per-value cap; the output as a whole is not
    template = '{% set s = "a" * 999999 %}{% for i in range(2000) %}{{ s }}{% endfor %}'
    with pytest.raises(PromptRenderError, match=r"rendered prompt passed 16,000,000 characters"):
        PromptRenderer({"a": template}).render("a", {})
