"""The page's files: self-contained (no CDN), the vendored library as recorded, exports."""

from __future__ import annotations

import hashlib
import re
from importlib import resources

import agentflow.runtime.ui as ui
from agentflow.runtime.ui.app import STATIC_FILES

STATIC = resources.files("agentflow.runtime.ui").joinpath("static")


def test_every_static_file_ships_and_nothing_loads_from_another_origin() -> None:
    for name in STATIC_FILES:
        assert STATIC.joinpath(name).is_file(), name
    for name in ("index.html", "app.js", "style.css"):
        text = STATIC.joinpath(name).read_text("utf-8")
        assert not re.search(r"""(src|href)=["']?(https?:)?//""", text), name
        assert 'fetch("http' not in text and "cdn" not in text.lower(), name


def test_vendored_cytoscape_matches_its_record() -> None:
    data = STATIC.joinpath("cytoscape.min.js").read_bytes()
    record = STATIC.joinpath("VENDORED.md").read_text("utf-8")
    assert hashlib.sha256(data).hexdigest() in record
    assert data.startswith(b"/**\n * Copyright (c) 2016-")  # the MIT license header is kept
    assert "3.34.4" in record


def test_public_names() -> None:
    public = {name for name, value in vars(ui).items() if not name.startswith("_")}
    modules = {"answer_endpoint", "app", "catalog", "graph", "server", "source", "transport"}
    assert set(ui.__all__) == public - modules
