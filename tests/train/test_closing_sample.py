"""A finished decoder run's summary.json carries a few words of its model: the text `tinylm generate` writes."""

import contextlib
import io
import json

from tinylm.cli.main import main


def test_the_summary_holds_the_sample_tinylm_generate_writes(trained_run):
    sample = json.loads((trained_run / "summary.json").read_text())["sample"]
    assert sample["prompt"] == "" and 0 < sample["tokens"] <= 24 and sample["text"].strip()
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["generate", str(trained_run), "--prompt", "", "--max-new-tokens", "24", "--seed",
                     str(sample["seed"]), "--temperature", str(sample["temperature"]), "--top-k", str(sample["top_k"])])
    assert code == 0 and out.getvalue() == sample["text"] + "\n"
