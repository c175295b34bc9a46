"""Where the parity tests look for fixtures and base models, and when a missing one fails.

A root named by ``$COMPRESSBENCH_REFERENCE_DIR`` must be complete: anything missing fails the
test with its path. Only the default root beside the checkout may be absent (skip).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bench.compressors.soft import reference_fixtures as fixtures
from tests.bench.compressors.soft.encoder import repo_parity as parity

OUTCOMES = (pytest.fail.Exception, pytest.skip.Exception)


def _configured_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fixture root holding the shared 500x folder but no base model beside it."""
    shared = fixtures.load_fixture("500x").path
    root = tmp_path / "data" / "reference"
    root.mkdir(parents=True)
    (root / "500x").symlink_to(shared, target_is_directory=True)
    monkeypatch.setenv(fixtures.ENV_VAR, str(root))
    return root


def test_a_configured_root_without_the_base_model_fails_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _configured_root(tmp_path, monkeypatch)
    with pytest.raises(OUTCOMES) as raised:
        parity.stories_target()
    assert raised.type is pytest.fail.Exception
    assert str(root.parent / "stories260K_hf") in str(raised.value)


def test_the_default_root_without_the_base_model_skips(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(fixtures.ENV_VAR, raising=False)
    monkeypatch.setattr(fixtures, "DEFAULT_ROOT", tmp_path / "data" / "reference")
    with pytest.raises(OUTCOMES) as raised:
        parity.stories_target()
    assert raised.type is pytest.skip.Exception


def test_a_configured_root_without_a_method_folder_fails_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _configured_root(tmp_path, monkeypatch)
    for read in (fixtures.load_fixture, fixtures.case_ids, parity.loss_case_ids):
        with pytest.raises(OUTCOMES) as raised:
            read("gist")
        assert raised.type is pytest.fail.Exception, read.__name__
        assert str(root / "gist") in str(raised.value)


def test_a_missing_configured_root_fails_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    missing = tmp_path / "no-such-root"
    monkeypatch.setenv(fixtures.ENV_VAR, str(missing))
    with pytest.raises(OUTCOMES) as raised:
        fixtures.case_ids("500x")
    assert raised.type is pytest.fail.Exception
    assert str(missing) in str(raised.value)


def test_the_default_root_absent_gives_no_cases_and_skips(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(fixtures.ENV_VAR, raising=False)
    monkeypatch.setattr(fixtures, "DEFAULT_ROOT", tmp_path / "absent")
    assert fixtures.case_ids("500x") == [] and parity.loss_case_ids("500x") == []
    with pytest.raises(OUTCOMES) as raised:
        fixtures.load_fixture("500x")
    assert raised.type is pytest.skip.Exception
