"""A task the leaderboard has no benchmark spec for is named, not silently dropped."""

from __future__ import annotations

from pathlib import Path

import pytest

from leaderboard import BuildOptions, make_tables, read_runs
from tests.leaderboard._lmeval_files import write_results


def test_a_task_without_a_spec_is_named_under_the_raw_table(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    scores = {"compressed_squad": {"squad_f1": 0.5, "squad_exact_match": 0.5,
                                   "compression_ratio": 0.5},
              "compressed_mystery": {"squad_f1": 0.9, "squad_exact_match": 0.9,
                                     "compression_ratio": 0.1}}
    write_results(tmp_path / "runs" / "a", "pretrained=m,compressor=none", scores)
    tables = {t.name: t for t in make_tables(read_runs([tmp_path / "runs"]),
                                             BuildOptions(out=tmp_path / "board"))}
    notes = " ".join(tables["raw"].notes)
    assert "compressed_mystery" in notes and "m / none" in notes
    assert "compressed_mystery" in capsys.readouterr().err
    # its numbers are in no table: the efficiency table pools the known task only
    (ratio,) = [cell.value for cell in tables["efficiency"].rows[0][2:3]]
    assert ratio == pytest.approx(0.5)
