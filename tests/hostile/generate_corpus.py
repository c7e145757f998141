"""Write the hostile pipeline corpus: tests/hostile/corpus/*.yaml, prompts/ and manifest.json.

    .venv/bin/python tests/hostile/generate_corpus.py

Every entry is a pipeline a careless or malicious author could write: each DSL
field with wrong types and absurd values, encoding tricks, YAML features the
DSL rejects, ids that clash with Python, plugin paths that name dangerous
callables, prompts that point outside the pipeline's directory or try to leave
the jinja sandbox, and graph shapes that blow up naive algorithms.

The manifest records what each entry must do (see test_hostile_corpus.py):
  expect   "ok" (compiles and runs), "error" (a clean diagnostic naming a
           file:line:col), or "any" (either, as long as it is clean);
  run      false for shapes whose dry run is exponential by design;
  run_args extra `agentflow run` arguments (e.g. --fail-first 1 to take the QA loop);
  run_exit the exit statuses `agentflow run` may give (default [0]);
  slow     true for entries that take seconds each: the suite skips them unless
           AGENTFLOW_HOSTILE_SLOW=1 (see bench/RESULTS.md).
Files the test creates itself (a FIFO, a 64 MB sparse file, symlinks out of
the directory, canary plugin modules) are described in harness.py.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CORPUS = HERE / "corpus"

Node = dict[str, Any] | list[Any] | str

# ---------------------------------------------------------------------------- emitter


def emit(node: Node, indent: int = 0) -> list[str]:
    """Block-style YAML; leaf strings are written as raw YAML scalar text."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            if isinstance(value, str):
                lines.append(f"{pad}{key}: {value}")
            elif not value:
                lines.append(f"{pad}{key}: {'{}' if isinstance(value, dict) else '[]'}")
            else:
                lines.append(f"{pad}{key}:")
                lines += emit(value, indent + 2)
    else:
        assert isinstance(node, list)
        for value in node:
            if isinstance(value, str):
                lines.append(f"{pad}- {value}")
            else:
                inner = emit(value, indent + 2)
                lines.append(f"{pad}- {inner[0].lstrip()}")
                lines += inner[1:]
    return lines


def text(node: Node) -> str:
    return "\n".join(emit(node)) + "\n"


def base() -> dict[str, Any]:
    """A small valid pipeline: a writer, a reviewer with a feedback loop, one gate."""
    return {
        "name": "hostile",
        "version": '"1.0"',
        "defaults": {
            "model": "claude-sonnet-4-6",
            "max_tokens": "64",
            "retry": {"max_attempts": "2", "backoff_ms": "0"},
        },
        "tools": [
            {"id": "filesystem", "type": "builtin", "config": {"root": "workspace"}},
        ],
        "state_machine": {
            "initial": "start",
            "terminal": ["done", "failed"],
            "states": [{"id": s} for s in ("start", "working", "checking", "done", "failed")],
        },
        "agents": [
            {
                "id": "writer",
                "prompt": "prompts/plain.md",
                "tools": ["filesystem"],
                "transitions": {"on_start": "working", "on_complete": "checking"},
                "dispatch": {"strategy": "sequential", "target": "reviewer"},
            },
            {
                "id": "reviewer",
                "prompt": "prompts/review.md",
                "retry": {"max_attempts": "2", "backoff_ms": "0"},
                "on_fail": {
                    "action": "feedback_and_retry",
                    "target": "writer",
                    "feedback_path": '"$.issues"',
                },
                "transitions": {"on_pass": "done", "on_fail": "working", "on_abort": "failed"},
            },
        ],
        "aggregation": {
            "strategy": "all_pass",
            "gates": ["reviewer"],
            "on_complete": {"transition": "done"},
            "on_any_abort": {"transition": "failed"},
        },
    }


def fanout_base() -> dict[str, Any]:
    """The base with a fan-out in front: planner -> (fan-out) writer -> reviewer."""
    doc = base()
    doc["agents"].insert(
        0,
        {
            "id": "planner",
            "prompt": "prompts/items.md",
            "dispatch": {
                "strategy": "parallel_fan_out",
                "target": "writer",
                "max_concurrency": "4",
            },
        },
    )
    return doc


def with_value(path: tuple[str | int, ...], raw: Any, doc: dict[str, Any] | None = None) -> str:
    doc = copy.deepcopy(doc or base())
    node: Any = doc
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = raw
    return text(doc)


def without(path: tuple[str | int, ...]) -> str:
    doc = copy.deepcopy(base())
    node: Any = doc
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]
    return text(doc)


def with_plugin(plugin: str, config: dict[str, str] | None = None) -> str:
    doc = base()
    tool: dict[str, Any] = {"id": "evil", "type": "plugin", "plugin": f'"{plugin}"'}
    if config:
        tool["config"] = config
    doc["tools"].append(tool)
    doc["agents"][0]["tools"] = ["filesystem", "evil"]
    return text(doc)


def with_prompt(prompt: str, agent: int = 0) -> str:
    return with_value(("agents", agent, "prompt"), prompt)


# ---------------------------------------------------------------------------- graph shapes

GRAPH_HEADER = """\
name: {name}
defaults:
  retry:
    max_attempts: 2
    backoff_ms: 0
state_machine:
  initial: start
  terminal: [done]
  states:
    - id: start
    - id: working
    - id: done
agents:
"""
QA_GRAPH_HEADER = GRAPH_HEADER.replace("[done]", "[done, failed]").replace(
    "    - id: done\n", "    - id: done\n    - id: failed\n"
)


def agent_block(
    agent_id: str,
    *,
    prompt: str = "prompts/work.md",
    dispatch: str = "",
    qa_target: str | None = None,
    transitions: str = "",
) -> str:
    lines = [f"  - id: {agent_id}", f"    prompt: {prompt}"]
    if transitions:
        lines.append(f"    transitions: {transitions}")
    if dispatch:
        lines.append(f"    dispatch: {dispatch}")
    if qa_target:
        lines.append(f"    on_fail: {{action: feedback_and_retry, target: {qa_target}}}")
    return "\n".join(lines) + "\n"


def chain(n: int, name: str, *, end: str = "done") -> str:
    out = GRAPH_HEADER.format(name=name)
    for i in range(n):
        dispatch = f"{{strategy: sequential, target: a{i + 1}}}" if i + 1 < n else ""
        trans = (
            "{on_start: working}" if i == 0 else (f"{{on_complete: {end}}}" if i + 1 == n else "")
        )
        out += agent_block(f"a{i}", dispatch=dispatch, transitions=trans)
    return out


def cycle(n: int) -> str:
    out = GRAPH_HEADER.format(name=f"cycle-{n}")
    for i in range(n):
        trans = "{on_complete: done}" if i == 0 else ""
        out += agent_block(
            f"a{i}",
            dispatch=f"{{strategy: sequential, target: a{(i + 1) % n}}}",
            transitions=trans,
        )
    return out


def diamonds(n: int, *, qa: bool = False, route: bool = False) -> str:
    """n stacked diamonds: s_i broadcasts (or routes) to l_i and r_i, both hand on to s_{i+1}.

    The number of dispatch paths doubles at each diamond (2^n); every graph
    analysis must be linear in the size of the graph, not in the paths. Broadcast
    branches meeting again are an error (DSL v2: two parallel paths on one item);
    route branches are exclusive and may meet.
    """
    header = QA_GRAPH_HEADER if qa or route else GRAPH_HEADER
    kind = "-route" if route else ""
    out = header.format(name=f"diamonds-{n}{kind}{'-qa' if qa else ''}")
    for i in range(n):
        nxt = f"s{i + 1}"
        abort = "on_abort: failed" if route else ""  # v2: a failure must end the run
        moves = [t for t in ("on_start: working" if i == 0 else "", abort) if t]
        trans = "{" + ", ".join(moves) + "}" if moves else ""
        fork = (
            f"{{strategy: route, cases: {{left: l{i}, right: r{i}}}}}"
            if route
            else f"{{strategy: parallel_broadcast, targets: [l{i}, r{i}]}}"
        )
        out += agent_block(f"s{i}", dispatch=fork, transitions=trans)
        branch = f"{{{abort}}}" if route else ""
        out += agent_block(
            f"l{i}", dispatch=f"{{strategy: sequential, target: {nxt}}}", transitions=branch
        )
        out += agent_block(
            f"r{i}", dispatch=f"{{strategy: sequential, target: {nxt}}}", transitions=branch
        )
    if qa:
        out += agent_block(
            f"s{n}",
            transitions="{on_pass: done, on_fail: working, on_abort: failed}",
            qa_target="s0",
        )
    else:
        last = "{on_complete: done, on_abort: failed}" if route else "{on_complete: done}"
        out += agent_block(f"s{n}", transitions=last)
    return out


def broadcast_wide(n: int) -> str:
    out = GRAPH_HEADER.format(name=f"broadcast-{n}")
    targets = ", ".join(f"q{i}" for i in range(n))
    out += agent_block(
        "root",
        dispatch=f"{{strategy: parallel_broadcast, targets: [{targets}]}}",
        transitions="{on_start: working, on_complete: done}",
    )
    for i in range(n):
        out += agent_block(f"q{i}")
    return out


def nested_fanout(depth: int) -> str:
    out = GRAPH_HEADER.format(name=f"nested-fanout-{depth}")
    for i in range(depth):
        trans = "{on_start: working}" if i == 0 else ""
        out += agent_block(
            f"f{i}",
            prompt="prompts/items.md",
            dispatch=f"{{strategy: parallel_fan_out, target: f{i + 1}, max_concurrency: 2}}",
            transitions=trans,
        )
    out += agent_block(f"f{depth}", transitions="{on_complete: done}")
    return out


def gates_many(n: int) -> str:
    out = broadcast_wide(n).replace(f"name: broadcast-{n}", f"name: gates-{n}")
    out = out.replace("[done]", "[done, failed]").replace(
        "    - id: done\n", "    - id: done\n    - id: failed\n", 1
    )
    out += f"aggregation:\n  strategy: threshold\n  min_pass: {n}\n  gates:\n"
    out += "".join(f"    - q{i}\n" for i in range(n))
    out += "  on_complete: {transition: done}\n  on_any_abort: {transition: failed}\n"
    return out


def disconnected(n: int) -> str:
    out = GRAPH_HEADER.format(name=f"disconnected-{n}")
    out += agent_block("root", transitions="{on_start: working, on_complete: done}")
    for i in range(n):
        out += agent_block(f"island{i}")
    return out


def typo_storm(n: int) -> str:
    """n agents whose transitions each name a misspelt state among n states (did-you-mean x n^2)."""
    out = "name: typo-storm\nstate_machine:\n  initial: start\n  terminal: [done]\n  states:\n"
    out += "    - id: start\n    - id: done\n"
    out += "".join(f"    - id: state_number_{i}\n" for i in range(n))
    out += "agents:\n"
    for i in range(n):
        out += agent_block(f"a{i}", transitions=f"{{on_complete: state_numbr_{i}}}")
    return out


def feedback_loops_to_one_target() -> str:
    return (
        QA_GRAPH_HEADER.format(name="two-loops")
        + agent_block(
            "w",
            dispatch="{strategy: parallel_broadcast, targets: [qa1, qa2]}",
            transitions="{on_start: working}",
        )
        + agent_block("qa1", qa_target="w", transitions="{on_pass: done, on_abort: failed}")
        + agent_block("qa2", qa_target="w", transitions="{on_pass: done, on_abort: failed}")
    )


def feedback_to(target: str) -> str:
    return (
        QA_GRAPH_HEADER.format(name="feedback")
        + agent_block(
            "w", dispatch="{strategy: sequential, target: qa}", transitions="{on_start: working}"
        )
        + agent_block(
            "qa",
            dispatch="{strategy: sequential, target: after}",
            qa_target=target,
            transitions="{on_pass: done, on_abort: failed}",
        )
        + agent_block("after")
    )


def deep_mapping(depth: int) -> str:
    out = with_value(("defaults", "model"), "x").rstrip("\n") + "\n"
    nest = "".join(f"{' ' * (2 * i)}k{i}:\n" for i in range(depth))
    return out + "extra:\n" + "\n".join("  " + line for line in nest.splitlines()) + " v\n"


# ---------------------------------------------------------------------------- the corpus

ENTRIES: dict[str, tuple[str | bytes, dict[str, Any]]] = {}


def add(name: str, source: str | bytes, expect: str, why: str, **extra: Any) -> None:
    assert name not in ENTRIES, name
    ENTRIES[name] = (source, {"expect": expect, "why": why, **extra})


def numeric_fields() -> None:
    """Every number in the DSL with values that are out of range, not finite or not numbers."""
    ints = {
        "defaults_max_tokens": ("defaults", "max_tokens"),
        "defaults_max_attempts": ("defaults", "retry", "max_attempts"),
        "defaults_backoff_ms": ("defaults", "retry", "backoff_ms"),
        "defaults_max_concurrency": ("defaults", "max_concurrency"),
        "defaults_max_tool_rounds": ("defaults", "max_tool_rounds"),
        "defaults_max_total_tokens": ("defaults", "max_total_tokens"),
        "agent_max_tokens": ("agents", 0, "max_tokens"),
        "agent_max_tool_rounds": ("agents", 0, "max_tool_rounds"),
        "agent_max_attempts": ("agents", 1, "retry", "max_attempts"),
        "agent_backoff_ms": ("agents", 1, "retry", "backoff_ms"),
        "dispatch_max_concurrency": ("agents", 0, "dispatch", "max_concurrency"),
    }
    floats = {
        "defaults_temperature": ("defaults", "temperature"),
        "defaults_timeout_s": ("defaults", "timeout_s"),
        "defaults_max_cost_usd": ("defaults", "max_cost_usd"),
        "agent_temperature": ("agents", 0, "temperature"),
    }
    bad_everywhere = {
        "negative": ("-1", "below the range"),
        "nan": (".nan", "not a number"),
        "inf": ("1e999", "overflows to infinity"),
        "list": ("[1, 2]", "a list, not a number"),
        "empty": ('""', "an empty string"),
    }
    int_only = {
        "huge": ("100000000000000000000000000000", "10^29: absurdly large"),
        "float": ("1.5", "a float where an int belongs"),
        "hex": ("0x10", "hex is not a DSL number"),
        "bool": ("true", "a boolean"),
    }
    float_only = {
        "neg_inf": ("-.inf", "minus infinity"),
        "huge": ("1e308", "a huge finite float"),
        "word": ("warm", "a word"),
    }
    int_values = list({**bad_everywhere, **int_only}.items())
    for index, (field, path) in enumerate(ints.items()):
        # Four values per field, rotating so every value meets several fields; the
        # huge value goes to every field whose upper bound issue 8 names.
        chosen = [int_values[(index * 4 + k) % len(int_values)] for k in range(4)]
        if field in (
            "defaults_max_tokens",
            "agent_max_tokens",
            "defaults_max_attempts",
            "agent_max_attempts",
            "defaults_backoff_ms",
            "agent_backoff_ms",
        ):
            chosen.append(("huge", int_only["huge"]))
        for key, (raw, why) in dict(chosen).items():
            expect = "error"
            if key == "huge" and field in (
                "defaults_max_concurrency",
                "defaults_max_tool_rounds",
                "defaults_max_total_tokens",
                "agent_max_tool_rounds",
                "dispatch_max_concurrency",
            ):
                expect = "any"  # the contract sets no upper bound; it must stay clean
            add(
                f"num_{field}_{key}",
                with_value(path, raw),
                expect,
                f"{'.'.join(map(str, path))}: {raw} ({why})",
            )
    float_values = list({**bad_everywhere, **float_only}.items())
    for index, (field, path) in enumerate(floats.items()):
        chosen = [float_values[(index * 4 + k) % len(float_values)] for k in range(4)]
        for key, (raw, why) in dict(chosen).items():
            expect = "error"
            if key == "huge" and field in ("defaults_timeout_s", "defaults_max_cost_usd"):
                expect = "any"
            add(
                f"num_{field}_{key}",
                with_value(path, raw),
                expect,
                f"{'.'.join(map(str, path))}: {raw} ({why})",
            )
    for key, (path, raw) in {
        "temperature_dot": (("defaults", "temperature"), "."),
        "timeout_s_e5": (("defaults", "timeout_s"), "e5"),
        "max_tokens_underscore": (("defaults", "max_tokens"), "_"),
        "agent_max_tokens_minus_underscore": (("agents", 0, "max_tokens"), "-_"),
    }.items():
        add(
            f"num_text_{key}",
            with_value(path, raw),
            "error",
            f"{raw!r}: strictyaml's number check lets it through, int()/float() cannot read it",
        )
    add(
        "num_min_pass_zero",
        with_value(("aggregation", "strategy"), "threshold").replace(
            "  gates:", "  min_pass: 0\n  gates:"
        ),
        "error",
        "aggregation.min_pass: 0",
    )
    add(
        "num_min_pass_huge",
        with_value(("aggregation", "strategy"), "threshold").replace(
            "  gates:", "  min_pass: 99999999999999999999999\n  gates:"
        ),
        "error",
        "aggregation.min_pass larger than the gates",
    )
    add(
        "num_backoff_huge_taken",
        with_value(("agents", 1, "retry", "backoff_ms"), "100000000000000000000000000000"),
        "error",
        "a 10^29 ms backoff on the QA loop a --fail-first run takes (sleeps forever if accepted)",
        run_args=["--fail-first", "1"],
    )


def string_fields() -> None:
    add("str_name_empty", with_value(("name",), '""'), "error", "empty pipeline name")
    add("str_name_keyword", with_value(("name",), "class"), "error", "module name is a keyword")
    add(
        "str_name_dunder_import",
        with_value(("name",), "__import__"),
        "any",
        "pipeline name __import__ (module name made from it)",
    )
    add(
        "str_name_digits",
        with_value(("name",), '"123"'),
        "error",
        "module name starts with a digit",
    )
    add("str_name_stdlib_os", with_value(("name",), "os"), "ok", "a module named os.py")
    add(
        "str_name_code_injection",
        with_value(("name",), "\"x'''\\\"\\\"\\\"); import os; os.system('touch CANARY-name') #\""),
        "any",
        "quotes and code in the name (repr() everywhere)",
    )
    add("str_name_newlines", with_value(("name",), '"a\\nb\\r\\nc"'), "any", "newlines in the name")
    add(
        "str_name_escape_sequences",
        with_value(("name",), '"\\e[2J\\e[31mred\\a"'),
        "error",
        "terminal escape sequences in the name (a bad module name) must not reach the terminal raw",
    )
    add(
        "str_name_rtl",
        with_value(("name",), '"evil\\u202egnp.yaml"'),
        "any",
        "RTL override in name",
    )
    add(
        "str_name_zero_width",
        with_value(("name",), '"hos\\u200btile"'),
        "any",
        "zero-width space in name",
    )
    add("str_name_nul", with_value(("name",), '"a\\0b"'), "any", "NUL in the name")
    add(
        "str_name_surrogate",
        with_value(("name",), '"x\\ud800y"'),
        "error",
        "a lone surrogate in the name",
    )
    add("str_name_huge", with_value(("name",), "n" * 100_000), "error", "a 100 kB pipeline name")
    add(
        "str_name_unicode_identifier",
        with_value(("name",), "ñandú"),
        "any",
        "non-ASCII module name",
    )
    add("str_version_list", with_value(("version",), "[1, 2]"), "error", "version is a list")
    add(
        "str_version_block_scalar",
        with_value(("version",), "|\n    1.0\n    2.0"),
        "any",
        "version as a block scalar",
    )
    add("str_model_empty", with_value(("defaults", "model"), '""'), "error", "empty model")
    add(
        "str_model_newline",
        with_value(("defaults", "model"), '"claude\\nx-api-key: leak"'),
        "any",
        "header injection in a model name",
    )
    add(
        "str_model_huge",
        with_value(("agents", 0, "model"), "m" * 50_000),
        "any",
        "50 kB model name",
    )
    for key, url in {
        "file": "file:///etc/passwd",
        "javascript": "javascript:alert(1)",
        "scheme_only": "http://",
        "ftp": "ftp://example.com",
        "bad_ipv6": '"http://[::1"',
        "userinfo": '"https://user:pass@evil.example/"',
        "crlf": '"http://localhost/\\r\\nX-Evil: 1"',
    }.items():
        add(
            f"str_base_url_{key}",
            with_value(("defaults", "base_url"), url),
            "any" if key == "userinfo" else "error",
            f"base_url {url}",
        )
    add(
        "str_description_injection",
        with_value(
            ("tools", 0, "description"),
            '\'"""); import os; os.system("touch CANARY-description") #\'',
        ),
        "ok",
        "code in a tool description (must stay a string literal)",
    )
    add(
        "str_description_rtl_zw",
        with_value(("tools", 0, "description"), '"Read files\\u202e\\u200b\\u2066 safely\\u2069"'),
        "ok",
        "bidi and zero-width in a description",
    )
    add(
        "str_description_huge_line",
        with_value(("tools", 0, "description"), "d" * 100_000),
        "ok",
        "a 100 kB line",
    )
    add(
        "str_description_controls",
        with_value(("tools", 0, "description"), '"bell\\a esc\\e[0m del\\x7f"'),
        "ok",
        "control characters in a description (escaped in the generated module)",
    )
    add(
        "str_config_key_keyword",
        with_value(("tools", 0, "config"), {"class": "x"}),
        "error",
        "config key 'class' cannot be a keyword argument",
    )
    add(
        "str_config_key_dunder",
        with_value(("tools", 0, "config"), {"__class__": "x"}),
        "any",
        "config key __class__",
    )
    add(
        "str_config_key_unicode",
        with_value(("tools", 0, "config"), {"ключ": "x"}),
        "error",
        "non-ASCII config key",
    )
    add(
        "str_config_value_injection",
        with_value(
            ("tools", 0, "config"),
            {"root": '\'workspace"); __import__("os").system("touch CANARY-config"); ("\''},
        ),
        "any",
        "code in a config value (must stay a string literal)",
    )
    add(
        "str_config_value_map",
        with_value(("tools", 0, "config"), {"root": "{a: b}"}),
        "error",
        "config value is a mapping",
    )
    add(
        "str_config_key_empty",
        with_value(("tools", 0, "config"), {'""': "x"}),
        "error",
        "empty config key",
    )
    for key, path in {
        "recursive_descent": "$..issues",
        "huge_index": "$.issues[99999999999999999999999]",
        "dunder": "$.__class__",
        "unclosed": "$[",
        "quote_injection": '"$[\'a\\"); import os #\']"',
        "long": "$" + ".issues" * 5000,
        "negative_index": "$.issues[-99999999999999999999]",
    }.items():
        add(
            f"str_feedback_path_{key}",
            with_value(("agents", 1, "on_fail", "feedback_path"), path),
            "any"
            if key in ("dunder", "long", "huge_index", "negative_index", "quote_injection")
            else "error",
            f"feedback_path {path[:40]}",
            run_args=["--fail-first", "1"],
            run_exit=[0, 1],
        )


def ids() -> None:
    for word in (
        "class",
        "import",
        "lambda",
        "None",
        "match",
        "case",
        "type",
        "_",
        "__init__",
        "__import__",
        "print",
        "open",
        "eval",
        "exec",
        "object",
        "str",
        "enum",
        "final",
        "annotations",
        "pipeline",
        "run",
        "state",
        "trigger",
        "self",
        "cls",
        "sys",
        "agentflow",
        "protocol",
    ):
        add(
            f"id_agent_{word.strip('_') or 'underscore'}_{'dunder' if word[:2] == '__' else 'w'}",
            text(_rename_agent("writer", word)),
            "error" if not _valid_id(word) else "ok",
            f"agent id {word!r}",
        )
    for word in ("class", "none", "initial", "terminal", "state", "enum", "done_"):
        doc = base()
        body = text(doc).replace("working", word)
        add(
            f"id_state_{word}", body, "error" if not _valid_id(word) else "ok", f"state id {word!r}"
        )
    add(
        "id_aggregation_reserved",
        text(_rename_agent("reviewer", "aggregation")),
        "error",
        "the reserved agent id 'aggregation'",
    )
    add(
        "id_pascal_clash",
        text(_rename_agent("reviewer", "writer_")),
        "ok",
        "ids whose class names could clash (writer / writer_)",
    )
    doc = base()
    doc["agents"].append({"id": "a_b", "prompt": "prompts/work.md"})
    doc["agents"].append({"id": "a__b", "prompt": "prompts/work.md"})
    add("id_pascal_clash_underscores", text(doc), "any", "a_b and a__b both give class names 'AB'")
    add(
        "id_same_as_state",
        text(_rename_agent("writer", "working")),
        "ok",
        "an agent and a state share an id",
    )
    add(
        "id_homoglyph",
        text(base()).replace("target: reviewer", "target: r\u0435viewer"),
        "error",
        "Cyrillic '\\u0435' in a dispatch target",
    )
    add(
        "id_zero_width",
        text(base()).replace("target: reviewer", 'target: "review\u200ber"'),
        "error",
        "a zero-width space inside an id reference",
    )
    add(
        "id_rtl",
        text(base()).replace("target: reviewer", 'target: "\u202ereviewer"'),
        "error",
        "an RTL override inside an id reference",
    )
    add(
        "id_tool_plugin_named_filesystem",
        with_plugin("hostile_canary:Boom").replace("id: evil", "id: filesystem"),
        "error",
        "a plugin tool that reuses the builtin id",
    )
    add("id_huge", text(_rename_agent("writer", "w" * 20_000)), "ok", "a 20 kB agent id")


def _valid_id(word: str) -> bool:
    import keyword
    import re

    return bool(re.fullmatch(r"[a-z][a-z0-9_]*", word)) and not keyword.iskeyword(word)


def _rename_agent(old: str, new: str) -> dict[str, Any]:
    doc = json.loads(json.dumps(base()))
    raw = json.dumps(doc).replace(f'"{old}"', json.dumps(new))
    return json.loads(raw)


def plugins() -> None:
    cases = {
        "os_system": ("os:system", {"command": '"touch CANARY-os-system"'}),
        "subprocess_popen": ("subprocess:Popen", {"args": '"touch CANARY-popen"', "shell": '"1"'}),
        "builtins_eval": ("builtins:eval", {"source": "\"open('CANARY-eval', 'w')\""}),
        "builtins_exec": ("builtins:exec", {"source": "\"open('CANARY-exec', 'w')\""}),
        "builtins_open": ("builtins:open", {"file": "CANARY-open", "mode": "w"}),
        "builtins_import": ("builtins:__import__", {"name": "hostile_canary_indirect"}),
        "importlib": ("importlib:import_module", {"name": "hostile_canary_indirect"}),
        "os_remove": ("os:remove", {"path": "SENTINEL"}),
        "shutil_rmtree": ("shutil:rmtree", {"path": "SENTINEL_DIR"}),
        "os_mkdir": ("os:mkdir", {"path": "CANARY-mkdir"}),
        "canary_function": ("hostile_canary:boom", {}),
        "canary_class_not_tool": ("hostile_canary:Boom", {"x": "y"}),
        "canary_instance": ("hostile_canary:instance", {}),
        "pathlib_path": ("pathlib:Path", {}),
        "agentflow_cli_main": ("agentflow.runtime.cli.main:main", {"argv": "run"}),
    }
    for key, (path, config) in cases.items():
        add(
            f"plugin_{key}",
            with_plugin(path, config or None),
            "ok",
            f"plugin {path}: compiles (not imported); run refuses it before calling anything",
            run_exit=[1, 2],
        )
    add(
        "plugin_tool_class_on_path",
        with_plugin("hostile_canary:ToolShaped", {"flag": "z"}),
        "ok",
        "a Tool class from a module on sys.path: declared, so run builds it",
        run_exit=[0],
    )
    add(
        "plugin_declared_import",
        with_plugin("hostile_canary_import:Tool"),
        "ok",
        "a real Tool in a module with import side effects: only `run` may import it",
        run_exit=[0, 1],
    )
    add(
        "plugin_missing_module",
        with_plugin("no_such_module_xyz:Tool"),
        "ok",
        "an unimportable plugin: run says so",
        run_exit=[1, 2],
    )
    for key, path in {
        "no_class": "os:",
        "no_module": ":system",
        "double_colon": "os::system",
        "trailing_dot": "os.:X",
        "empty_segment": "a..b:C",
        "two_colons": "os:system:x",
        "relative": "../../evil:Tool",
        "absolute": "/tmp/evil:Tool",
        "unicode": "ösmodul:Tool",
        "spaces": "os :system",
        "keyword_module": "class:Tool",
        "dunder_attr": "os:__builtins__",
    }.items():
        add(
            f"plugin_path_{key}",
            with_plugin(path),
            "any" if key in ("dunder_attr",) else "error",
            f"plugin path {path!r}",
            run_exit=[1, 2],
        )
    add(
        "plugin_builtin_with_plugin_path",
        with_value(("tools", 0, "plugin"), '"os:system"'),
        "error",
        "a builtin tool with a plugin path",
    )


def prompts() -> None:
    cases = {
        "proc_environ": ("/proc/self/environ", "error", "the environment (an API key) as a prompt"),
        "dev_zero": ("/dev/zero", "error", "an endless device"),
        "dev_urandom": ("/dev/urandom", "error", "an endless non-UTF-8 device"),
        "fifo": ("prompts/fifo.md", "error", "a FIFO (would block forever)"),
        "absolute": ("/etc/passwd", "error", "an absolute path"),
        "dotdot": ("../outside/secret.md", "error", "a ../ escape"),
        "dotdot_inner": (
            "prompts/../../outside/secret.md",
            "error",
            "a ../ escape inside the path",
        ),
        "symlink_escape": (
            "prompts/escape_link.md",
            "error",
            "a symlink that leaves the directory",
        ),
        "symlink_absolute": ("prompts/passwd_link.md", "error", "a symlink to /etc/passwd"),
        "symlink_loop": ("prompts/loop_a.md", "error", "a symlink loop"),
        "symlink_dangling": ("prompts/dangling.md", "error", "a dangling symlink"),
        "directory": ("prompts/a_directory.md", "error", "a directory"),
        "huge_sparse": ("prompts/huge.md", "error", "a 64 MB file (over any sane size cap)"),
        "empty_path": ('""', "error", "an empty path"),
        "nul_in_path": ('"prompts/plain.md\\0.txt"', "error", "a NUL byte in the path"),
        "home": ("~/.bashrc", "error", "a ~ path (not expanded; not there)"),
        "dot": (".", "error", "the pipeline's own directory"),
        "yaml_file": ("prompts/self.yaml", "any", "a pipeline YAML file as a prompt"),
        "not_utf8": ("prompts/latin1.md", "error", "latin-1 bytes"),
        "proc_cmdline": ("/proc/self/cmdline", "error", "/proc file with NULs"),
        "dev_stdin": ("/dev/stdin", "error", "standard input"),
    }
    for key, (path, expect, why) in cases.items():
        add(f"prompt_{key}", with_prompt(path), expect, f"prompt {why}")
    for key, (_body, expect, why) in JINJA.items():
        add(f"jinja_{key}", with_prompt(f"prompts/jinja_{key}.md"), expect, why, run_exit=[0, 1])


JINJA: dict[str, tuple[str, str, str]] = {
    "mro": ("{{ ''.__class__.__mro__ }}", "any", "a jinja escape via __mro__"),
    "subclasses": (
        "{{ input.__class__.__mro__[1].__subclasses__() }}",
        "any",
        "subclasses() from a variable",
    ),
    "lipsum_globals": (
        "{{ lipsum.__globals__['os'].popen('touch CANARY-jinja-lipsum').read() }}",
        "any",
        "os.popen through lipsum's globals",
    ),
    "cycler_init": (
        "{{ cycler.__init__.__globals__.os.popen('touch CANARY-jinja-cycler') }}",
        "any",
        "os.popen through cycler",
    ),
    "self_context": (
        "{{ self._TemplateReference__context.joiner.__init__.__globals__.os"
        ".popen('touch CANARY-jinja-self').read() }}",
        "any",
        "the template reference's context",
    ),
    "attr_filter": (
        "{{ (input|attr('__class__')|attr('__base__')|attr('__subclasses__'))() }}",
        "any",
        "the attr filter",
    ),
    "format_string": (
        "{{ '{0.__class__.__init__.__globals__}'.format(input) }}",
        "any",
        "str.format attribute access",
    ),
    "include": ("{% include 'escape_link.md' %}", "any", "include of another file"),
    "include_abs": ("{% include '/etc/passwd' %}", "any", "include of /etc/passwd"),
    "import": ("{% import 'plain.md' as p %}{{ p }}", "any", "import of a template"),
    "from_import": ("{% from '../../outside/secret.md' import x %}", "any", "from-import"),
    "extends": ("{% extends '/etc/passwd' %}", "any", "extends /etc/passwd"),
    "range_bomb": ("{{ range(10**9)|list|length }}", "any", "a huge range"),
    "pow_bomb": ("{{ 9**9**9 }}", "any", "a huge power (constant folding must not hang)"),
    "string_bomb": ("{{ 'x' * 10**10 }}", "any", "a 10 GB string"),
    "nested_ifs": (
        "{% if input %}" * 3000 + "x" + "{% endif %}" * 3000,
        "error",
        "3000 nested if blocks (recursion in the template parser)",
    ),
    "nested_parens": (
        "{{ " + "(" * 5000 + "input" + ")" * 5000 + " }}",
        "error",
        "5000 nested parentheses",
    ),
    "nested_fors": (
        "{% for a in input %}" * 25 + "x" + "{% endfor %}" * 25,
        "error",
        "25 nested for loops (past Python's 20 nested blocks)",
    ),
    "nested_ifs_200": (
        "{% if input %}" * 200 + "x" + "{% endif %}" * 200,
        "error",
        "200 nested ifs (past Python's 100 indentation levels)",
    ),
    "undefined_var": ("{{ os.environ }}", "error", "an undeclared variable"),
    "setattr": ("{% set x = input.__dict__.update({'a': 1}) %}", "any", "mutating an object"),
    "controls": (
        "\x1b[31mred\x07 {{ input }} \x1b]0;title\x07",
        "any",
        "terminal escapes in a prompt template",
    ),
    "syntax_error_late": ("line\n" * 500 + "{% if %}", "error", "a syntax error at line 501"),
    "do_ext": ("{% do input.append(1) %}", "error", "an extension tag that is not enabled"),
    "macro_recursion": (
        "{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}",
        "any",
        "unbounded macro recursion at render time",
    ),
}


BASE_PROMPTS = {
    "plain.md": "You write about {{ input }}.\n"
    "{% for issue in feedback %}- fix: {{ issue.message }}\n{% endfor %}\n",
    "review.md": "Review the draft for {{ input }}: {{ upstream }} (attempt {{ attempt }}).\n",
    "items.md": "Split {{ input }} into work items; you are {{ agent }} on {{ item_id }}.\n",
    "work.md": "Work on {{ item }}.\n",
}


def encodings() -> None:
    valid = text(base())
    add("enc_bom", "\ufeff" + valid, "ok", "a UTF-8 BOM")
    add("enc_double_bom", "\ufeff\ufeff" + valid, "any", "two BOMs")
    add("enc_utf16_le", valid.encode("utf-16"), "error", "UTF-16 with a BOM")
    add("enc_utf16_be_nobom", valid.encode("utf-16-be"), "error", "UTF-16 BE without BOM")
    add("enc_utf32", valid.encode("utf-32"), "error", "UTF-32")
    add(
        "enc_latin1_comment",
        ("# caf\xe9\n" + valid).encode("latin-1"),
        "error",
        "latin-1 in a comment",
    )
    add(
        "enc_latin1_value",
        valid.replace("hostile", "caf\xe9").encode("latin-1"),
        "error",
        "latin-1 in a value",
    )
    add(
        "enc_overlong_utf8",
        valid.encode().replace(b"hostile", b"host\xc0\xafile"),
        "error",
        "an overlong UTF-8 sequence",
    )
    add(
        "enc_encoded_surrogate",
        valid.encode().replace(b"hostile", b"host\xed\xa0\x80ile"),
        "error",
        "a UTF-8-encoded surrogate",
    )
    add("enc_crlf", valid.replace("\n", "\r\n"), "ok", "CRLF line ends")
    add("enc_cr_only", valid.replace("\n", "\r"), "any", "old-Mac CR line ends")
    add(
        "enc_mixed_line_ends",
        "".join(line + ("\r\n" if i % 2 else "\n") for i, line in enumerate(valid.splitlines())),
        "ok",
        "mixed LF/CRLF",
    )
    add(
        "enc_nel_ls_ps",
        valid.replace("name: hostile", 'name: "a\u0085b\u2028c\u2029d"'),
        "any",
        "NEL, LS and PS in a value",
    )
    add(
        "enc_tabs_indent",
        valid.replace("  - id: writer", "\t- id: writer"),
        "error",
        "tab indentation",
    )
    add(
        "enc_tab_in_value",
        valid.replace("model: claude-sonnet-4-6", "model:\tclaude-sonnet-4-6"),
        "any",
        "a tab after the colon",
    )
    add("enc_nul_byte", valid.replace("hostile", "host\x00ile"), "error", "a raw NUL byte")
    add(
        "enc_raw_escape_byte",
        valid.replace("name: hostile", "name: \x1b[31mhostile"),
        "error",
        "a raw ESC byte (terminal escape) in a plain scalar",
    )
    add(
        "enc_raw_bell_in_comment",
        "# \x07\x08\x1b[2J\n" + valid,
        "any",
        "control bytes in a comment",
    )
    add(
        "enc_c1_control",
        valid.replace("name: hostile", 'name: "host\\x9bile"'),
        "any",
        "a C1 control (CSI) in a value",
    )
    add("enc_only_bom", "\ufeff", "error", "nothing but a BOM")
    add("enc_empty", "", "error", "an empty file")
    add("enc_whitespace_only", "   \n\t\n  \n", "error", "whitespace only")
    add("enc_comments_only", "# a\n# b\n", "error", "comments only")
    add(
        "enc_noncharacters",
        valid.replace("name: hostile", 'name: "\\U0010FFFF\\uFFFE"'),
        "any",
        "Unicode noncharacters",
    )
    add(
        "enc_emoji_zwj",
        valid.replace("name: hostile", 'name: "👩‍👩‍👧"'),
        "any",
        "emoji ZWJ sequence",
    )
    add(
        "enc_very_long_line",
        valid.replace('version: "1.0"', 'version: "' + "9" * 200_000 + '"'),
        "ok",
        "a 200 kB line",
    )
    add("enc_many_lines", valid + "#\n" * 50_000, "ok", "50,000 comment lines")


def yaml_features() -> None:
    valid = text(base())
    add(
        "yaml_anchor_alias",
        valid.replace(
            "retry:\n    max_attempts: 2\n    backoff_ms: 0",
            "retry: &r\n    max_attempts: 2\n    backoff_ms: 0",
        ).replace("    retry:\n      max_attempts: 2\n      backoff_ms: 0", "    retry: *r"),
        "error",
        "an anchor and alias",
    )
    bomb = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]\n" for i in range(1, 10)
    )
    add("yaml_billion_laughs", bomb + valid, "error", "the billion laughs alias bomb")
    add(
        "yaml_merge_key_alias",
        valid.replace("defaults:\n", "base: &b\n  max_tokens: 5\ndefaults:\n  <<: *b\n"),
        "error",
        "a << merge key with an alias",
    )
    add(
        "yaml_merge_key_inline",
        valid.replace("defaults:\n", "defaults:\n  <<: {max_tokens: 5}\n"),
        "error",
        "a << merge key with an inline mapping (must not be ignored)",
    )
    add(
        "yaml_merge_key_agent",
        valid.replace("  - id: reviewer\n", "  - <<: {model: x}\n    id: reviewer\n"),
        "error",
        "a << merge key in an agent",
    )
    add(
        "yaml_complex_key_seq",
        valid.replace("name: hostile\n", "name: hostile\n? [a, b]\n: c\n"),
        "error",
        "a complex key ? [a, b]",
    )
    add(
        "yaml_complex_key_map",
        valid.replace("name: hostile\n", "name: hostile\n? {a: 1}\n: c\n"),
        "error",
        "a complex key ? {a: 1}",
    )
    add(
        "yaml_complex_key_nested",
        valid.replace(
            "    max_attempts: 2\n    backoff_ms: 0\ntools",
            "    max_attempts: 2\n    backoff_ms: 0\n    ? [x]\n    : y\ntools",
        ),
        "error",
        "a complex key in a nested mapping",
    )
    add(
        "yaml_explicit_key",
        valid.replace("name: hostile", "? name\n: hostile"),
        "any",
        "an explicit ? key that is a plain string",
    )
    add("yaml_duplicate_top", valid + "name: again\n", "error", "a duplicate top-level key")
    add(
        "yaml_duplicate_nested",
        valid.replace(
            "    prompt: prompts/plain.md\n",
            "    prompt: prompts/plain.md\n    prompt: prompts/review.md\n",
        ),
        "error",
        "a duplicate key",
    )
    add("yaml_two_documents", valid + "---\n" + valid, "error", "two documents")
    add(
        "yaml_document_end",
        valid + "...\n" + "garbage: [\n",
        "error",
        "text after the document end",
    )
    add("yaml_directive", "%YAML 1.1\n---\n" + valid, "any", "a %YAML directive")
    add(
        "yaml_tag_directive",
        "%TAG ! tag:evil.example,2000:\n---\n" + valid,
        "any",
        "a %TAG directive",
    )
    add(
        "yaml_python_object_apply",
        valid.replace(
            "name: hostile", 'name: !!python/object/apply:os.system ["touch CANARY-yaml-tag"]'
        ),
        "error",
        "a python/object/apply tag",
    )
    add(
        "yaml_python_name",
        valid.replace("model: claude-sonnet-4-6", "model: !!python/name:os.system"),
        "error",
        "a python/name tag",
    )
    add(
        "yaml_binary_tag",
        valid.replace("name: hostile", "name: !!binary aGVsbG8="),
        "error",
        "!!binary",
    )
    add(
        "yaml_local_tag",
        valid.replace("name: hostile", "name: !evil hostile"),
        "error",
        "a local tag",
    )
    add(
        "yaml_str_tag",
        valid.replace("max_tokens: 64", "max_tokens: !!str 64"),
        "error",
        "!!str on an int",
    )
    add(
        "yaml_flow_json",
        json.dumps(
            {
                "name": "json-flow",
                "state_machine": {
                    "initial": "s",
                    "terminal": ["d"],
                    "states": [{"id": "s"}, {"id": "d"}],
                },
                "agents": [
                    {"id": "a", "prompt": "prompts/work.md", "transitions": {"on_complete": "d"}}
                ],
            }
        ),
        "any",
        "the whole pipeline as a JSON document",
    )
    add(
        "yaml_deep_flow_lists",
        valid.replace("name: hostile", "name: " + "[" * 5000 + "]" * 5000),
        "error",
        "5000 nested flow lists (refused before parsing: it took ruamel 26 s)",
    )
    add(
        "yaml_deep_flow_maps",
        valid.replace("name: hostile", "name: " + "{a: " * 3000 + "b" + "}" * 3000),
        "error",
        "3000 nested flow mappings",
    )
    add("yaml_deep_block_maps", deep_mapping(400), "error", "400 nested block mappings")
    add(
        "yaml_block_scalar_prompt",
        with_prompt("|\n      prompts/plain.md"),
        "any",
        "a block scalar prompt path (trailing newline)",
    )
    add("yaml_folded_name", with_value(("name",), ">-\n  folded\n  name"), "any", "a folded name")
    add(
        "yaml_quoted_keys",
        valid.replace("name:", '"name":').replace("agents:", "'agents':"),
        "ok",
        "quoted keys",
    )
    add(
        "yaml_null_required",
        with_value(("state_machine", "initial"), "~"),
        "error",
        "~ for initial",
    )
    add(
        "yaml_null_key",
        valid.replace("name: hostile", "name: hostile\n~: x"),
        "error",
        "a null key",
    )
    add(
        "yaml_int_key", valid.replace("name: hostile", "name: hostile\n1: x"), "error", "an int key"
    )
    add(
        "yaml_bool_values",
        with_value(("name",), "on").replace('version: "1.0"', "version: yes"),
        "ok",
        "YAML 1.1 booleans as strings",
    )
    add(
        "yaml_many_unknown_keys",
        valid + "".join(f"k{i}: v\n" for i in range(5_000)),
        "error",
        "5,000 unknown keys",
        slow=True,
    )
    add(
        "yaml_agents_mapping",
        valid.replace("agents:\n  - id: writer", "agents:\n  writer:\n    id: writer"),
        "error",
        "agents as a mapping",
    )
    add("yaml_scalar_document", "just a string\n", "error", "a scalar document")
    add("yaml_list_document", "- a\n- b\n", "error", "a list document")
    add(
        "yaml_unclosed_quote",
        valid.replace("name: hostile", 'name: "hostile'),
        "error",
        "an unclosed quote",
    )
    add(
        "yaml_bad_indent",
        valid.replace("    prompt: prompts/plain.md", "      prompt: prompts/plain.md"),
        "error",
        "a wrong indentation",
    )
    add("yaml_truncated", valid[: len(valid) // 2], "error", "cut off in the middle")
    add("yaml_missing_required_agents", without(("agents",)), "error", "no agents key")
    add("yaml_empty_agents", with_value(("agents",), "[]"), "error", "agents: []")
    add("yaml_empty_states", with_value(("state_machine", "states"), "[]"), "error", "states: []")


def graphs() -> None:
    add(
        "graph_diamonds_22",
        diamonds(22),
        "error",
        "22 stacked broadcast diamonds (4M paths; parallel paths meet: an error)",
    )
    add(
        "graph_diamonds_40",
        diamonds(40),
        "error",
        "40 stacked broadcast diamonds (10^12 paths; parallel paths meet: an error)",
    )
    add(
        "graph_route_diamonds_22",
        diamonds(22, route=True),
        "ok",
        "22 stacked route diamonds (4M exclusive paths)",
        run=False,
    )
    add(
        "graph_route_diamonds_40",
        diamonds(40, route=True),
        "ok",
        "40 stacked route diamonds (10^12 exclusive paths)",
        run=False,
    )
    add(
        "graph_diamonds_8_qa",
        diamonds(8, qa=True),
        "error",
        "8 diamonds into one QA agent: 256 dispatch paths into it (one allowed)",
    )
    add(
        "graph_diamonds_40_qa",
        diamonds(40, qa=True),
        "error",
        "40 diamonds into one QA agent: 2^40 paths; the check must not enumerate them",
    )
    add(
        "graph_diamonds_6_run",
        diamonds(6, route=True),
        "ok",
        "6 route diamonds, run (64 exclusive paths through the last agent)",
    )
    add(
        "graph_chain_1000",
        chain(1000, "chain-1000"),
        "ok",
        "a 1,000-agent sequential chain",
        run=False,
    )
    add("graph_chain_480", chain(480, "chain-480"), "ok", "a 480-agent chain run end to end")
    add(
        "graph_chain_1500_unterminated",
        chain(1500, "chain-1500", end="working"),
        "error",
        "a 1,500-agent chain with no way to a terminal state",
        slow=True,
    )
    add("graph_broadcast_500", broadcast_wide(500), "ok", "one agent broadcasting to 500")
    add("graph_gates_300", gates_many(300), "ok", "a threshold over 300 gates")
    add("graph_nested_fanout_6", nested_fanout(6), "ok", "6 nested fan-outs (3^6 dry-run items)")
    add(
        "graph_nested_fanout_300",
        nested_fanout(300),
        "ok",
        "300 nested fan-outs: explain's worst case is astronomically large",
        run=False,
        slow=True,
    )
    add(
        "graph_disconnected_2000",
        disconnected(2000),
        "ok",
        "2,000 unreachable agents (warnings)",
        run=False,
        slow=True,
    )
    for n in (1, 2, 3, 7, 100, 1000):
        add(f"graph_cycle_{n}", cycle(n), "error", f"a dispatch cycle of length {n}")
    add(
        "graph_broadcast_self",
        GRAPH_HEADER.format(name="bself")
        + agent_block(
            "a",
            dispatch="{strategy: parallel_broadcast, targets: [b, a]}",
            transitions="{on_complete: done}",
        )
        + agent_block("b"),
        "error",
        "a broadcast that includes itself",
    )
    add(
        "graph_fanout_self",
        GRAPH_HEADER.format(name="fself")
        + agent_block(
            "a",
            dispatch="{strategy: parallel_fan_out, target: a}",
            transitions="{on_complete: done}",
        ),
        "error",
        "a fan-out to itself",
    )
    add("graph_feedback_self", feedback_to("qa"), "error", "feedback to the QA agent itself")
    add(
        "graph_feedback_downstream", feedback_to("after"), "error", "feedback to a downstream agent"
    )
    add(
        "graph_feedback_upstream",
        feedback_to("w"),
        "ok",
        "feedback to the upstream agent",
        run_args=["--fail-first", "1"],
    )
    add(
        "graph_two_loops_one_target",
        feedback_loops_to_one_target(),
        "ok",
        "two QA loops to one target (explain's worst case must be exact)",
        run_args=["--fail-first", "5"],
        run_exit=[1],
    )
    add(
        "graph_typo_storm_1000",
        typo_storm(1000),
        "error",
        "1,000 misspelt states: did-you-mean over 1,000 candidates each",
        slow=True,
    )
    add(
        "graph_states_unreachable_3000",
        text(base()).replace(
            "    - id: failed\n",
            "    - id: failed\n" + "".join(f"    - id: orphan{i}\n" for i in range(3000)),
        ),
        "error",
        "3,000 unreachable states",
        slow=True,
    )


def fuzz_found() -> None:
    """Mutants bench/fuzz_pipelines.py found mishandled, kept as corpus entries."""
    for path in sorted((HERE / "fuzz_found").glob("*.yaml")):
        add(f"fuzz_{path.stem}", path.read_bytes(), "error", f"fuzz mutant {path.name}")


def write_corpus(target: Path) -> int:
    """Write every entry, the prompts and the manifest under `target`; returns the entry count."""
    ENTRIES.clear()
    numeric_fields()
    string_fields()
    ids()
    plugins()
    prompts()
    encodings()
    yaml_features()
    graphs()
    fuzz_found()
    target.mkdir(exist_ok=True)
    for path in target.glob("*.yaml"):
        path.unlink()
    prompts_dir = target / "prompts"
    prompts_dir.mkdir(exist_ok=True)
    for key, (body, _, _) in JINJA.items():
        (prompts_dir / f"jinja_{key}.md").write_text(body, encoding="utf-8")
    (prompts_dir / "latin1.md").write_bytes("caf\xe9 {{ input }}\n".encode("latin-1"))
    (prompts_dir / "self.yaml").write_text(text(base()))
    for name, body in BASE_PROMPTS.items():
        (prompts_dir / name).write_text(body, encoding="utf-8")
    manifest: dict[str, dict[str, Any]] = {}
    for name, (source, meta) in sorted(ENTRIES.items()):
        data = source.encode("utf-8", "surrogatepass") if isinstance(source, str) else source
        (target / f"{name}.yaml").write_bytes(data)
        manifest[f"{name}.yaml"] = meta
    (target / "manifest.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    return len(manifest)


def main() -> int:
    print(f"wrote {write_corpus(CORPUS)} entries to {CORPUS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
