"""A run's inputs identified by content: a resume may find them elsewhere, never changed."""

from __future__ import annotations

import hashlib
import json
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest

from bench.substrate.errors import DEBUG_ENV
from bench.train import main
from bench.training.inputs import INPUT_FLAGS, check_same_inputs, content_digest, identity


@pytest.fixture(autouse=True)
def _no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(DEBUG_ENV, raising=False)


def _folder(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_folder_is_identified_by_its_files_not_its_place(tmp_path: Path) -> None:
    files = {"config.json": "{}", "weights/part-1.bin": "abc"}
    first = content_digest(_folder(tmp_path / "a", files))
    assert content_digest(_folder(tmp_path / "elsewhere" / "b", files)) == first
    assert content_digest(_folder(tmp_path / "c", {**files, ".cache/lock": "x"})) == first
    assert content_digest(_folder(tmp_path / "d", {**files, "weights/part-1.bin": "abd"})) != first
    assert content_digest(_folder(tmp_path / "e", {**files, "extra.txt": ""})) != first
    renamed = {"config.json": "{}", "weights/part-2.bin": "abc"}
    assert content_digest(_folder(tmp_path / "f", renamed)) != first
    single = tmp_path / "data.parquet"
    single.write_bytes(b"rows")
    assert content_digest(single) == hashlib.sha256(b"rows").hexdigest()


def test_a_hub_model_is_identified_by_its_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    asked = []

    def download(name: str, filename: str, revision: str | None = None) -> str:
        asked.append((name, filename, revision))
        return f"/cache/models--org--tiny/snapshots/0123abcd/{filename}"

    monkeypatch.setattr("huggingface_hub.hf_hub_download", download)
    assert identity("org/tiny", "v1") == {"path": "org/tiny", "commit": "0123abcd"}
    assert asked == [("org/tiny", "config.json", "v1")]


@pytest.mark.parametrize("name", sorted(INPUT_FLAGS))
def test_a_resume_with_other_content_names_the_flag_and_both_values(tmp_path: Path,
                                                                    name: str) -> None:
    old, new, moved = (tmp_path / "old.bin", tmp_path / "new.bin", tmp_path / "moved.bin")
    old.write_bytes(b"one")
    new.write_bytes(b"two")
    moved.write_bytes(b"one")
    recorded = {key: identity(str(old)) for key in INPUT_FLAGS}
    check_same_inputs(tmp_path, recorded, {**recorded, name: identity(str(moved))})
    where = tmp_path / "trainer_state.json"
    flag = INPUT_FLAGS[name]
    old_hash, new_hash = (hashlib.sha256(b).hexdigest()[:12] for b in (b"one", b"two"))
    with pytest.raises(ValueError) as raised:
        check_same_inputs(where, recorded, {**recorded, name: identity(str(new))})
    assert str(raised.value) == (
        f"{where}: trained with {flag}='{old}' (sha256 {old_hash}), this run has '{new}' "
        f"(sha256 {new_hash}); resume with the same settings or use another --out")
    with pytest.raises(ValueError, match=f"trained with {flag}='{old}' .*, this run has none"):
        check_same_inputs(where, recorded, {**recorded, name: None})


def _arguments(base: Path, data: Path, out: Path, steps: int) -> list[str]:
    return ["pretrain", "--preset", "tiny-cpu", "--method", "icae", "--base", str(base),
            "--data", str(data), "--out", str(out), "--steps", str(steps), "--save-every", "2",
            "--eval-every", "0", "--no-progress"]


@pytest.mark.slow
def test_resume_refuses_changed_data_or_base_and_the_export_records_them(
        stories: Path, small_corpus: Path, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    data = small_corpus / "train.parquet"
    out = tmp_path / "out"
    assert main(_arguments(stories, data, out, 2)) == 0
    training = json.loads((out / "final" / "soft_config.json").read_text())["training"]
    assert training["inputs"]["data"] == {"path": str(data),
                                          "sha256": hashlib.sha256(data.read_bytes()).hexdigest()}
    assert training["inputs"]["base"]["path"] == str(stories)
    assert training["inputs"]["dev"] is None and training["inputs"]["init_from"] is None
    state = json.loads((out / "checkpoint-0000002" / "trainer_state.json").read_text())
    assert state["inputs"] == training["inputs"]

    moved = shutil.copy(data, tmp_path / "moved.parquet")
    assert main(_arguments(stories, Path(moved), out, 4)) == 0  # same rows, another path
    capsys.readouterr()
    changed = tmp_path / "changed.parquet"
    rows = pd.read_parquet(data)
    rows.loc[0, "text"] = "Tom had a blue kite."
    rows.to_parquet(changed, index=False)
    assert main(_arguments(stories, changed, out, 6)) == 2
    error = capsys.readouterr().err
    assert re.fullmatch(
        rf"error: {re.escape(str(out))}/checkpoint-0000004/trainer_state\.json: trained with "
        rf"--data='{re.escape(str(moved))}' \(sha256 [0-9a-f]{{12}}\), this run has "
        rf"'{re.escape(str(changed))}' \(sha256 [0-9a-f]{{12}}\); resume with the same "
        r"settings or use another --out\n", error), error

    base = Path(shutil.copytree(stories, tmp_path / "base"))
    config = json.loads((base / "config.json").read_text())
    (base / "config.json").write_text(json.dumps({**config, "note": "retrained"}))
    assert main(_arguments(base, Path(moved), out, 6)) == 2
    assert f"trained with --base='{stories}' (sha256 " in capsys.readouterr().err
    assert sorted(p.name for p in out.glob("checkpoint-*")) == ["checkpoint-0000002",
                                                               "checkpoint-0000004"]
