"""`tinylm demo` ends with something to look at: sampled text and a loss plot; `tinylm generate`."""

import contextlib
import io
import json

import numpy as np
import pytest

from tinylm.cli.demo import PROMPTS
from tinylm.cli.main import main
from tinylm.errors import UserError
from tinylm.runs.loss_plot import plot_loss

# A smaller model than the demo's own, so the end-to-end run costs seconds; the corpus, tokenizer
# and everything after training are the demo's.
SMALL = ["--set", "model.name=L2-2-64x2", "--set", "train.batch_size=4", "--set", "eval.windows=8"]


def run_cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(argv)
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    code, stdout, _ = run_cli(["demo", "--out", str(out), "--steps", "4", *SMALL])
    assert code == 0, stdout
    return out, stdout


def sample_lines(stdout):
    """The demo's samples, one string per prompt (wrapped lines joined)."""
    block = stdout.split("openings", 1)[1].split("\nmore:", 1)[0].splitlines()[1:]
    samples = []
    for line in block:
        if line.startswith("    "):
            samples[-1] += " " + line.strip()
        else:
            samples.append(line.strip())
    return samples


@pytest.mark.slow  # uses the demo run (module fixture): ~5-20 s on two busy CPU cores
def test_a_short_demo_ends_with_validation_samples_and_a_plot(demo):
    import matplotlib.image

    out, stdout = demo
    assert "validation loss" in stdout
    samples = sample_lines(stdout)
    assert [s.split(" » ")[0] for s in samples] == list(PROMPTS)
    assert all(len(s.split(" » ")[1]) > 0 for s in samples)
    last = stdout.strip().splitlines()[-1]
    assert last == f"loss plot: {out / 'run' / 'loss.png'}"
    image = matplotlib.image.imread(out / "run" / "loss.png")
    assert image.shape[0] > 100 and image.shape[1] > 100
    records = [json.loads(line) for line in (out / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4]  # --steps 4 logs every step
    assert [r["step"] for r in records if "val_loss" in r and "event" not in r] == [4]


@pytest.mark.slow
def test_run_again_it_shows_the_same_samples(demo):
    out, first = demo
    code, again, _ = run_cli(["demo", "--out", str(out), "--steps", "4", *SMALL])
    assert code == 0
    assert "already trained: 4 steps" in again
    assert sample_lines(again) == sample_lines(first)


@pytest.mark.slow
def test_the_run_records_what_ran_and_a_rerun_keeps_its_times(demo):
    import os

    import yaml

    out, _ = demo
    run = out / "run"
    data = yaml.safe_load((run / "config.yaml").read_text())["data"]
    assert data["tokenizer"] == "bpe:4096" and data["store"] == os.path.abspath(out / "store")
    before = json.loads((run / "summary.json").read_text())
    assert before["wall_s"] >= before["session_wall_s"] > 0
    assert run_cli(["demo", "--out", str(out), "--steps", "4", *SMALL])[0] == 0
    after = json.loads((run / "summary.json").read_text())
    assert (after["wall_s"], after["session_wall_s"]) == (before["wall_s"], before["session_wall_s"])


@pytest.mark.slow
def test_generate_writes_the_demo_sample_for_the_same_seed(demo):
    out, stdout = demo
    code, text, _ = run_cli(["generate", str(out / "run"), "--prompt", PROMPTS[0], "--tokens", "24",
                             "--seed", "0", "--temperature", "0.8", "--top-k", "40"])
    assert code == 0

    def squeeze(s):
        return "".join(s.replace(" » ", "").removesuffix(" …").split())
    assert squeeze(text) == squeeze(sample_lines(stdout)[0])
    code, other, _ = run_cli(["generate", str(out / "run"), "--prompt", PROMPTS[0], "--tokens", "24", "--seed", "1"])
    assert code == 0 and squeeze(other) != squeeze(text)


@pytest.mark.slow
def test_generate_sees_the_window_the_run_trained_on(demo, tmp_path):
    import shutil

    from tinylm.cli.generate import trained_window
    from tinylm.eval.hf_import import load_any

    out, _ = demo
    assert load_any(out / "run").model.config.max_seq_len > 128
    assert trained_window(load_any(out / "run")) == 128  # the demo's data.seq_len
    loose = tmp_path / "loose"  # a checkpoint moved away from its run: the model's own window
    shutil.copytree(out / "run" / "checkpoints" / "step-00000004", loose)
    assert trained_window(load_any(loose)) is None


@pytest.mark.slow
def test_generate_refuses_a_bad_path_and_an_encoder_in_one_line(demo, tmp_path):
    from safetensors.torch import save_file

    from tinylm.models import build_model, resolve_model_config

    out, _ = demo
    code, _, err = run_cli(["generate", str(tmp_path / "nowhere"), "--prompt", "Alice"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "does not exist" in err

    ckpt = tmp_path / "encoder"
    ckpt.mkdir()
    encoder = build_model(resolve_model_config("L1-2-32x2", flavour="bert", vocab_size=4096, max_seq_len=32))
    save_file({k: v.contiguous() for k, v in encoder.state_dict().items()}, str(ckpt / "model.safetensors"))
    (ckpt / "model_config.json").write_text(json.dumps(encoder.config.to_dict()))
    (ckpt / "tokenizer.json").write_text((out / "store" / "tokenizer.json").read_text())
    code, _, err = run_cli(["generate", str(ckpt), "--prompt", "Alice"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "encoder" in err


@pytest.mark.parametrize("argv, match", [(["--steps", "0"], "--steps 0"),
                                         (["--steps", "5", "--set", "train.duration=9"], "not both"),
                                         (["--steps", "-1"], "--steps -1")])
def test_demo_refuses_a_bad_step_count_in_one_line(tmp_path, argv, match):
    code, _, err = run_cli(["demo", "--out", str(tmp_path), *argv])
    assert code == 2 and match in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "store").exists()  # refused before preparing anything


def write_metrics(run, lines):
    run.mkdir()
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def has_colour(image, rgb, tolerance=0.02):
    return bool((np.abs(image[..., :3] - np.array(rgb) / 255).max(axis=-1) < tolerance).any())


ORANGE = (255, 127, 14)  # matplotlib's C1: the validation curve


def test_the_plot_draws_validation_loss_only_where_logged(tmp_path):
    import matplotlib.image

    train = [{"step": s, "loss": 9.0 - s} for s in range(1, 6)]
    event = {"event": "end", "step": 5, "val_loss": 1.0}  # events are not points of the curve
    write_metrics(tmp_path / "a", train + [event])
    write_metrics(tmp_path / "b", train + [{"step": 5, "val_loss": 4.5, "val_ppl": 90.0}, event])
    without = matplotlib.image.imread(plot_loss(tmp_path / "a"))
    with_val = matplotlib.image.imread(plot_loss(tmp_path / "b", tmp_path / "elsewhere" / "b.png"))
    assert (tmp_path / "a" / "loss.png").is_file() and (tmp_path / "elsewhere" / "b.png").is_file()
    assert not has_colour(without, ORANGE)
    assert has_colour(with_val, ORANGE)


def test_the_plot_needs_a_run_with_a_loss(tmp_path):
    with pytest.raises(UserError, match="no metrics.jsonl"):
        plot_loss(tmp_path)
    write_metrics(tmp_path / "r", [{"event": "start", "step": 0}])
    with pytest.raises(UserError, match="no loss"):
        plot_loss(tmp_path / "r")
