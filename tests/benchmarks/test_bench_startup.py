"""The start-up benchmark's parsing of ``python -X importtime`` and its import accounting."""

from __future__ import annotations

from tests.benchmarks.conftest import load_script

bench_startup = load_script("bench_startup")

# (module, depth, self µs, cumulative µs), in the order Python reports them: children first.
RECORDED = [("encodings.aliases", 1, 310, 310), ("encodings", 0, 1200, 1510),
            ("lm_eval.api.registry", 1, 640, 3890), ("lm_eval.models", 0, 246, 4136)]


def _importtime_text(lines: list[tuple[str, int, int, int]]) -> str:
    header = "import time: self [us] | cumulative | imported package"
    body = [f"import time: {own:9d} | {total:10d} | {'  ' * depth}{name}"
            for name, depth, own, total in lines]
    return "\n".join([header, *body, "some other stderr line"])


def test_importtime_lines_are_parsed_with_their_nesting():
    parsed = bench_startup.parse_importtime(_importtime_text(RECORDED))
    assert [(p.module, p.depth, p.self_us, p.cumulative_us) for p in parsed] == RECORDED


def test_the_autoload_imports_nothing_heavy_beyond_the_cli_package():
    imported = {line.module for line in bench_startup.autoload_imports()}
    assert "lm_eval.models" in imported
    assert not imported & {"torch", "transformers", "datasets", "nltk", "sacrebleu",
                           "bench.lmeval.compressed_model", "bench.compressors"}


def test_the_pth_hook_imports_only_the_plugin_module_chain():
    modules = {line.module for line in bench_startup.hook_imports()}
    assert "bench.lmeval.plugin" in modules
    assert all(module.split(".")[0] == "bench" for module in modules)
