"""``leaderboard export``: the runs as typed Parquet tables with an ``eval.yaml``, which
``build`` reads back beside run folders: export -> build gives the page tables of the runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml

from bench import specs
from bench.substrate.errors import EXIT_INPUT
from leaderboard import BuildOptions, build, make_tables, read_runs
from leaderboard._cli import main
from leaderboard._export import to_csv
from leaderboard._results_data import RESULTS, RUNS, SAMPLES, SCHEMA_VERSION
from tests.leaderboard.conftest import FIXTURE_RUNS, fixture_sample_count

TABLE_FILES = ("raw", "normalised", "delta", "efficiency")


@pytest.fixture(scope="module")
def exported(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export") / "submission"
    assert main(["export", str(FIXTURE_RUNS), "--out", str(out), "--format", "hf-dataset"]) == 0
    return out


def _page(paths: list[Path], out: Path) -> Path:
    build(paths, BuildOptions(out=out))
    return out


def _tables(page: Path) -> dict[str, str]:
    return {path.name: path.read_text(encoding="utf-8") for path in sorted(page.iterdir())
            if path.suffix in (".csv", ".md", ".tex")}


def _csv(paths: list[Path]) -> dict[str, str]:
    """The CSV files ``build`` writes for ``paths``, by name (the same code, no page)."""
    tables = make_tables(read_runs(paths), BuildOptions(out=Path("unused")))
    return {f"{table.name}.csv": to_csv(table) for table in tables}


def test_the_export_gives_the_page_tables_of_the_runs(exported: Path) -> None:
    direct = _csv([FIXTURE_RUNS])
    assert {f"{name}.csv" for name in TABLE_FILES} <= set(direct)
    assert _csv([exported]) == direct


@pytest.mark.slow
def test_building_from_the_export_writes_the_same_tables(exported: Path,
                                                          tmp_path: Path) -> None:
    direct = _tables(_page([FIXTURE_RUNS], tmp_path / "direct"))
    again = _tables(_page([exported], tmp_path / "again"))
    assert {f"{name}.csv" for name in TABLE_FILES} <= set(direct)
    assert again == direct


def test_the_export_keeps_every_run_task_metric_and_sample(exported: Path) -> None:
    direct, again = read_runs([FIXTURE_RUNS]), read_runs([exported])
    assert [run.key for run in again] == [run.key for run in direct]
    for ran, read in zip(direct, again, strict=True):
        assert (read.date, read.limit, read.environment) == (ran.date, ran.limit,
                                                             ran.environment)
        assert read.tasks == ran.tasks


def test_a_page_merges_an_export_with_other_run_folders(tmp_path: Path) -> None:
    inbox, theirs = tmp_path / "inbox", tmp_path / "theirs"
    ours, submission = inbox / "ours", inbox / "submission"
    for folder in sorted(FIXTURE_RUNS.iterdir()):
        shutil.copytree(folder, (theirs if folder.name.startswith("truncate") else ours)
                        / folder.name)
    assert main(["export", str(theirs), "--out", str(submission)]) == 0
    everything = _csv([FIXTURE_RUNS])
    assert _csv([ours, submission]) == everything
    assert _csv([inbox]) == everything  # a folder holding runs and an export


def test_the_tables_are_typed_rows_with_the_schema_version(exported: Path) -> None:
    runs = read_runs([FIXTURE_RUNS])
    results = pq.read_table(exported / RESULTS).to_pylist()
    assert len(results) == sum(len(result.metrics) for run in runs
                               for result in run.tasks.values())
    samples = pq.read_table(exported / SAMPLES)
    assert samples.num_rows == fixture_sample_count()
    assert pq.read_table(exported / SAMPLES).schema.field("compression_ratio").type == "double"
    recorded = pq.read_table(exported / RUNS).to_pylist()
    for name in (RESULTS, SAMPLES, RUNS):
        assert set(pq.read_table(exported / name).column("schema_version").to_pylist()) == {
            SCHEMA_VERSION}
    for run, row in zip(runs, recorded, strict=True):
        record = run.config.get("compressbench")
        assert row["record_schema_version"] == (record or {}).get("schema_version")
        assert json.loads(row["config"]).get("compressbench") == record
    first = next(row for row in results if row["metric"] == "squad_f1")
    run = runs[first["run"]]
    assert first["value"] == run.tasks[first["task"]].metrics["squad_f1"]
    assert (first["target"], first["compressor"]) == (run.key.model, run.key.compressor)


def test_eval_yaml_names_the_tasks_the_runs_ran(exported: Path) -> None:
    document = yaml.safe_load((exported / "eval.yaml").read_text(encoding="utf-8"))
    assert list(document) == ["name", "description", "tasks"]
    ran = {task for run in read_runs([FIXTURE_RUNS]) for task in run.tasks}
    declared = [task for spec in specs.benchmarks() for task in spec.task_lengths()]
    assert [task["id"] for task in document["tasks"]] == [t for t in declared if t in ran]
    assert all(task["split"] == "test" and task["config"] for task in document["tasks"])
    card = (exported / "README.md").read_text(encoding="utf-8")
    front = yaml.safe_load(card.split("---\n")[1])
    assert [c["data_files"][0]["path"] for c in front["configs"]] == [RESULTS, SAMPLES, RUNS]


def test_an_evaluation_framework_is_written_only_when_named(tmp_path: Path) -> None:
    out = tmp_path / "named"
    assert main(["export", str(FIXTURE_RUNS), "--out", str(out),
                 "--evaluation-framework", "inspect-ai"]) == 0
    document = yaml.safe_load((out / "eval.yaml").read_text(encoding="utf-8"))
    assert list(document) == ["name", "description", "evaluation_framework", "tasks"]
    assert document["evaluation_framework"] == "inspect-ai"
    manifest = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    assert "--evaluation-framework inspect-ai" in json.dumps(manifest)


def test_the_same_runs_give_the_same_bytes(exported: Path, tmp_path: Path) -> None:
    again = tmp_path / "again"
    assert main(["export", str(FIXTURE_RUNS), "--out", str(again), "--format",
                 "hf-dataset"]) == 0
    for path in sorted(exported.rglob("*")):
        if path.is_file():
            assert path.read_bytes() == (again / path.relative_to(exported)).read_bytes(), path


def test_a_changed_or_foreign_export_is_one_line(exported: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    changed = tmp_path / "changed"
    shutil.copytree(exported, changed)
    (changed / "eval.yaml").write_text("tampered\n", encoding="utf-8")
    assert main(["build", str(changed), "--out", str(tmp_path / "page")]) == EXIT_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{changed}: eval.yaml has 9 bytes, manifest.json lists" in err[0]
    newer = tmp_path / "newer"
    shutil.copytree(exported, newer)
    manifest = json.loads((newer / "manifest.json").read_text(encoding="utf-8"))
    (newer / "manifest.json").write_text(json.dumps({**manifest, "schema_version": "2.0"}),
                                         encoding="utf-8")
    assert main(["build", str(newer), "--out", str(tmp_path / "page")]) == EXIT_INPUT
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "export schema '2.0' is not supported" in err[0]
