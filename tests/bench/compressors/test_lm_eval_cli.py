"""The hard compressors through the stock lm-eval CLI (``python -m bench eval``)."""

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import CORPUS

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("bench.lmeval.compressed_model") is None,
    reason="the `compressed` lm-eval model (bench.lmeval.compressed_model) is not available",
)


def write_squad_benchmark(root: Path) -> None:
    """A prepared ``squad`` benchmark of 4 questions on 2 contexts."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    contexts = [" ".join(CORPUS[:2]), " ".join(CORPUS[2:4])]
    questions = [(0, "Who won Super Bowl 50?", ["Denver Broncos"]),
                 (0, "Where is Normandy?", ["France"]),
                 (1, "What does complexity theory classify?", ["problems"]),
                 (1, "Which city is in Southern California?", ["Los Angeles"])]
    rows = {
        "qid": [f"q{i}" for i in range(len(questions))],
        "context_id": [f"c{c}" for c, _, _ in questions],
        "context": [contexts[c] for c, _, _ in questions],
        "question": [q for _, q, _ in questions],
        "answers": [a for _, _, a in questions],
        "source": ["SQuAD"] * len(questions),
        "context_tokens": [len(contexts[c].split()) for c, _, _ in questions],
    }
    folder = root / "squad"
    folder.mkdir(parents=True)
    pq.write_table(pa.table(rows), folder / "test.parquet")
    (folder / "README.md").write_text("# squad (test fixture)\n", encoding="utf-8")
    from bench.substrate.manifest import write_manifest

    write_manifest(folder, {"benchmark": "squad", "rows": 4},
                   "write_squad_benchmark in tests/bench/compressors/test_lm_eval_cli.py")


@pytest.mark.slow
@pytest.mark.parametrize("compressor", ["selective_context", "longllmlingua"])
def test_compressed_squad_through_lm_eval(compressor, tmp_path, target_model_dir,
                                          causal_compressor_dir, classifier_dir):
    write_squad_benchmark(tmp_path / "data")
    model = classifier_dir if compressor == "llmlingua2" else causal_compressor_dir
    model_args = (f"pretrained={target_model_dir},compressor={compressor},"
                  f"compressor_model={model},rate=0.5,compression_cache=off")
    env = {**os.environ, "COMPRESSBENCH_DATA": str(tmp_path / "data"), "HF_HUB_OFFLINE": "1",
           "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "bench", "eval", "--tasks", "compressed_squad",
               "--model", "compressed", "--model_args", model_args, "--limit", "4",
               "--device", "cpu", "--output_path", str(tmp_path / "out")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-4000:]
    [results_file] = (tmp_path / "out").rglob("results_*.json")
    results = json.loads(results_file.read_text(encoding="utf-8"))
    squad = results["results"]["compressed_squad"]
    assert 0.4 <= squad["compression_ratio,none"] <= 0.55
    assert 0.0 <= squad["squad_f1,none"] <= 1.0
    model_args = results["config"]["model_args"]
    if isinstance(model_args, str):
        assert f"compressor={compressor}" in model_args
    else:
        assert model_args["compressor"] == compressor
