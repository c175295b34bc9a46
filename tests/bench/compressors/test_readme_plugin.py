"""The README's complete plug-in example ("Writing a compressor"), taken from README.md as it
stands, installed as a package and run through lm-eval."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.conftest import read_samples
from tests.plugin_packages import install_plugin

README = Path(__file__).resolve().parents[3] / "README.md"
SECTION = "### A complete plug-in"


def _blocks(language: str) -> list[str]:
    """The ``language`` code blocks of the README's plug-in section, in order."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index(SECTION):]
    section = section[:section.index("\n## ")]
    return re.findall(rf"```{language}\n(.*?)```", section, re.S)


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    source = _blocks("python")[0]
    entry = re.search(r'^(\w+ = "(\w+):\w+")$', _blocks("toml")[0], re.M)
    assert entry is not None
    return install_plugin(tmp_path_factory, entry.group(2), source,
                          "compressbench.compressors", entry.group(1))


def test_the_readme_plugin_is_listed_and_runs_through_lm_eval(
        plugin_site: Path, data_env: Path, tiny_model_dir: Path, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.compressors import available_compressors, validate_options
    from bench.lmeval.eval_help import compressors_help
    from bench.lmeval.run import run_lm_eval
    from bench.substrate.errors import InputError

    monkeypatch.syspath_prepend(str(plugin_site))
    assert "keep_head" in available_compressors()
    help_text = " ".join(compressors_help().split())
    assert ("keep_head The first words of the context, up to rate x its target tokens. "
            "rate (float; default: 0.5; accepts [0, 1]): kept fraction of the context's "
            "target tokens") in help_text
    with pytest.raises(InputError, match=r"option rate must be in \[0, 1\], got 2"):
        validate_options("keep_head", {"rate": 2})
    results = run_lm_eval("compressed_reader",
                          f"tokenizer={tiny_model_dir},compressor=keep_head,rate=0.5",
                          ("compressed_squad",), tmp_path, limit=3)
    record = results["config"]["compressbench"]["compressor"]
    assert (record["name"], record["family"], record["settings"]) == ("keep_head", "hard",
                                                                      {"rate": 0.5})
    for sample in read_samples(tmp_path, "compressed_squad"):
        assert sample["requested_rate"] == 0.5
        assert 0 < sample["compressed_tokens"] <= round(0.5 * sample["original_tokens"])
