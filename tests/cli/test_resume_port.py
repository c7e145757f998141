"""`agentflow resume --port` is checked as `agentflow run --port` is: a number that is
no port is a usage error (exit 2) before the run is read or taken over."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentflow.runtime.cli.main import main


@pytest.mark.parametrize("port", ["99999", "-1", "http"])
def test_resume_refuses_a_port_out_of_range_before_touching_the_store(
    tmp_path: Path, port: str, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "store.db"
    with pytest.raises(SystemExit) as exited:
        main(["resume", "run-0000000000aa", "--store", str(store), "--port", port])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "argument --port" in err and "Traceback" not in err
    assert not store.exists()  # nothing was opened, nothing taken over
