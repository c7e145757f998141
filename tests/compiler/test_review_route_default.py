"""Second reader, DSL v2 part 2: a route case named 'default' beside a 'default:'.

The run names the default 'default' (route_chosen's "case", `--route r=default`), so
a case key 'default' next to a `default:` made the two indistinguishable: the audit
log said "case": "default" for either, and the dry run could never take the default
(`--route r=default` took the case).
"""

from __future__ import annotations

from pathlib import Path

from tests.compiler.v2_helpers import HEAD, compile_text, errors, line_of

CASE_NAMED_DEFAULT = (
    HEAD
    + """\
  - id: triage
    prompt: p.md
    output:
      kind: {enum: [default, urgent, other]}
    dispatch:
      strategy: route
      on: kind
      cases:
        default: normal
        urgent: end
      default: fallback
  - {id: normal, prompt: p.md}
  - {id: fallback, prompt: p.md}
"""
)


def test_a_case_named_default_beside_a_default_is_an_error(tmp_path: Path) -> None:
    line = line_of(CASE_NAMED_DEFAULT, "        default: normal")
    assert errors(CASE_NAMED_DEFAULT, tmp_path) == [
        f"v.yaml:{line}:9: error: case 'default' beside 'default:' is ambiguous: a run "
        "names the default 'default' (route_chosen events, --route triage=default); "
        "rename the value 'default' of 'kind'"
    ]


def test_a_case_named_default_without_a_default_compiles(tmp_path: Path) -> None:
    text = CASE_NAMED_DEFAULT.replace("      default: fallback\n", "        other: fallback\n")
    compile_text(text, tmp_path)
