"""Compute accounting: FLOPs per token that follow trainability, the incremental-training paper's closed
form beside our exact count, equal-compute points, MFU, and `tinylm compare --x flops`.
"""

import json

import pytest
import torch

from tinylm.compute import (equal_compute_points, flops_breakdown, flops_per_token, forward_flops_per_token,
                            incremental_closed_form, incremental_cost, known_peak_flops, matmul_parameters, mfu,
                            peak_flops, step_at_flops)
from tinylm.models import build_model, count_parameters, resolve_model_config

SEQ = 64


def _model(spec="L4-4-64x4", flavour="llama", **fields):
    with torch.device("meta"):
        return build_model(resolve_model_config(spec, flavour=flavour, vocab_size=500, **fields))


def _freeze(model, frozen_blocks=(), embeddings=False):
    for name, p in model.named_parameters():
        block = int(name.split(".")[1]) if name.startswith("layers.") else None
        p.requires_grad_(not (block in frozen_blocks or (embeddings and name.startswith("embed"))))
    return model


@pytest.mark.parametrize("flavour", ["llama", "gpt2", "neox"])
def test_a_fully_trainable_model_costs_six_per_parameter_plus_attention(flavour):
    model = _model(flavour=flavour)
    n = count_parameters(model)["matmul_parameters"]
    assert flops_per_token(model, SEQ) == 6 * n + 6 * 4 * SEQ * 64
    assert forward_flops_per_token(model, SEQ) == 2 * n + 2 * 4 * SEQ * 64


def test_frozen_layers_below_cost_less_than_frozen_layers_above():
    bottom = flops_breakdown(_freeze(_model(), frozen_blocks=(0, 1), embeddings=True), SEQ)
    top = flops_breakdown(_freeze(_model(), frozen_blocks=(2, 3), embeddings=True), SEQ)
    everything = flops_breakdown(_model(), SEQ)
    assert bottom["total"] < top["total"] < everything["total"]
    block = count_parameters(_model())["matmul_parameters"] - 500 * 64  # four blocks, without the head
    # frozen blocks under everything that trains: forward only, no backward at all (input grads or attention)
    assert bottom["backward_inputs"] == 2 * (block / 2 + 500 * 64)
    assert bottom["attention_backward"] == 2 * 2 * 2 * SEQ * 64
    # frozen blocks above trainable ones: gradients must cross them (input half), no weight half
    assert top["backward_weights"] == 2 * (block / 2 + 500 * 64)
    assert top["backward_inputs"] == everything["backward_inputs"] == 2 * (block + 500 * 64)
    assert top["attention_backward"] == everything["attention_backward"] == 4 * 2 * 2 * SEQ * 64


def test_input_gradients_flow_exactly_to_the_lowest_trainable_parameter():
    model = _model()
    for name, p in model.named_parameters():  # only the output layer trains
        p.requires_grad_(name == "lm_head.weight")
    b = flops_breakdown(model, SEQ)
    assert b["backward_weights"] == 2 * 500 * 64 and b["backward_inputs"] == 0 and b["attention_backward"] == 0
    model.layers[3].mlp_norm.weight.requires_grad_(True)  # now gradients must reach block 3's MLP input
    b = flops_breakdown(model, SEQ)
    mlp = 64 * 2 * 256 + 256 * 64
    assert b["backward_inputs"] == 2 * (mlp + 500 * 64) and b["attention_backward"] == 0
    trainable, frozen = matmul_parameters(model)
    assert (trainable, frozen) == (500 * 64, count_parameters(model)["matmul_parameters"] - 500 * 64)


def test_tied_output_layer_is_a_matmul_whose_gradient_reaches_the_embeddings():
    model = _model(flavour="gemma")  # tied
    for name, p in model.named_parameters():
        p.requires_grad_(name == "embed_tokens.weight")
    b = flops_breakdown(model, SEQ)
    assert b["backward_weights"] == 2 * 500 * 64
    assert b["backward_inputs"] == 2 * count_parameters(model)["matmul_parameters"]  # all the way down
    assert b["attention_backward"] == 4 * 2 * 2 * SEQ * 64


def test_a_masked_lm_heading_its_labelled_positions_pays_the_head_at_that_share_of_tokens():
    model = _model("L2-2-64x4", flavour="bert")  # tied decoder: embed_tokens (500 x 64) as the output matmul
    full, share = flops_breakdown(model, SEQ), flops_breakdown(model, SEQ, head_fraction=0.15)
    head = 64 * 64 + 500 * 64  # the MLM transform and the decoder
    assert full["forward"] - share["forward"] == pytest.approx(2 * 0.85 * head)
    assert full["backward_weights"] - share["backward_weights"] == pytest.approx(2 * 0.85 * head)
    assert share["attention_forward"] == full["attention_forward"]  # the blocks run at every position


@pytest.mark.parametrize("compile_, share", [(False, 0.15), (True, 1.0)])
def test_a_run_counts_the_head_it_runs(make_run, compile_, share):
    """An eager encoder run heads its masked positions only (data.mlm_probability of them); a compiled one,
    or one whose methods read the logits, runs the full head and counts it."""
    run = make_run(model="L2-2-32x2", flavour="bert", compile=compile_)
    assert run.flops_per_token == pytest.approx(flops_per_token(run.model, 16, head_fraction=share))


def test_the_papers_closed_form_and_equal_compute_points():
    assert [incremental_closed_form(s)["equal_compute_step"] for s in (4, 8, 12)] == [14688, 15469, 15729]
    for s in (4, 8, 12):
        cf = incremental_closed_form(s, 10_000)
        c_base, c_inc = 2 * 10_000 * 12 * 1.0, incremental_cost(10_000, 1.0, 12, s)
        assert c_inc + 2 * cf["continual_steps"] * 12 == pytest.approx(c_base)  # equal compute, by definition
        assert cf["continual_steps"] == pytest.approx(5 / 8 * (1 - 1 / s) * 10_000)


def test_exact_count_beside_the_closed_form():
    from tinylm.methods.grow_plan import incremental_compute

    cfg = resolve_model_config("gpt2-124m")
    for s in (4, 8, 12):
        paper_like = incremental_compute(cfg, s, also=[])
        as_coded = incremental_compute(cfg, s)  # embeddings, final norm and head train in phase 1
        closed = paper_like["closed_form"]["equal_compute_step"]
        # embeddings/head/attention cost the same in every stage and phase 1 pays input gradients through
        # frozen blocks: the savings are smaller than the closed form says, so equal compute comes earlier
        assert as_coded["exact"]["equal_compute_step"] < paper_like["exact"]["equal_compute_step"] < closed
        assert 0.4 < paper_like["exact"]["cost_ratio"] < as_coded["exact"]["cost_ratio"] < 1


def test_equal_compute_points_invert_piecewise_linear_flops():
    baseline = [(0, 0.0), (10, 100.0), (20, 200.0)]
    grown = [(0, 0.0), (5, 20.0), (10, 60.0), (20, 160.0), (30, 260.0)]  # cheaper early, then as costly
    points = equal_compute_points(baseline, {"base": baseline, "grow": grown, "short": [(0, 0.0), (4, 40.0)]})
    assert points["flops"] == 200.0 and points["reference_step"] == 20
    assert points["points"]["base"]["step"] == 20
    assert points["points"]["grow"]["step"] == pytest.approx(24.0)
    assert points["points"]["short"] == {"step": None, "reached": False}
    assert equal_compute_points(baseline, {"grow": grown}, at_step=10)["points"]["grow"]["step"] == pytest.approx(14)
    assert step_at_flops(grown, 20.0) == 5


def test_peak_and_mfu(monkeypatch, tmp_path):
    monkeypatch.setenv("TINYLM_CACHE", str(tmp_path))
    monkeypatch.delenv("TINYLM_PEAK_FLOPS", raising=False)
    assert known_peak_flops(torch.device("cpu")) is None and peak_flops(torch.device("cpu"), measure=False) is None
    measured = peak_flops(torch.device("cpu"))  # a matmul benchmark, measured once...
    assert measured > 1e6
    assert json.loads((tmp_path / "peak_flops.json").read_text())
    assert known_peak_flops(torch.device("cpu")) == measured  # ... and cached
    monkeypatch.setenv("TINYLM_PEAK_FLOPS", "2e9")
    assert peak_flops(torch.device("cpu")) == 2e9  # the user's number wins
    assert mfu(1e9, 2e9) == 0.5 and mfu(1e9, 2e9, devices=2) == 0.25 and mfu(1e9, None) is None


def test_runs_log_achieved_flops_and_mfu_when_the_peak_is_known(monkeypatch, make_run):
    from tinylm.train.loop import train

    monkeypatch.setenv("TINYLM_PEAK_FLOPS", "1e12")
    run = make_run(steps=4, log_every=2)
    last = train(run)
    assert last["flops_per_s"] > 0 and last["mfu"] == pytest.approx(last["flops_per_s"] / 1e12)
    monkeypatch.delenv("TINYLM_PEAK_FLOPS")
    monkeypatch.setenv("TINYLM_CACHE", "/nonexistent")
    assert "mfu" not in train(make_run(steps=2, log_every=2))


def test_compare_draws_curves_against_flops_and_marks_equal_compute(tiny_recipe, tmp_path, capsys):
    from tinylm.cli.main import main
    from tinylm.runs.execute import execute
    from tinylm.train.recipe import load_recipe

    model = {"name": "L4-4-32x2", "flavour": "llama"}
    base = execute(load_recipe(str(tiny_recipe("base", model=model)), ["train.duration=20", "eval.every=5"]),
                   tmp_path / "base")
    methods = [{"grow": {"stages": 4, "incremental": "20 steps"}}]
    grow = load_recipe(str(tiny_recipe("grow", model=model, methods=methods)), ["train.duration=30", "eval.every=5"])
    grown = execute(grow, tmp_path / "grow")
    assert grown["flops"] > base["flops"]
    plot = tmp_path / "fig" / "flops.png"
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "grow"), "--x", "flops", "--plot", str(plot),
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert plot.is_file() and data["reference_flops"] == base["flops"] and data["reference_step"] == 20
    base_row, grow_row = data["runs"]
    assert base_row["equal_compute"]["step"] == 20
    step = grow_row["equal_compute"]["step"]
    assert 20 < step < 30  # cheaper stages: the grown run reaches the baseline's compute after more steps
    assert grow_row["equal_compute"]["x"] == pytest.approx(base["flops"])
    assert grow_row["equal_compute"]["val_loss"] is not None
    assert [p[0] for p in grow_row["val_loss"]] == sorted(p[0] for p in grow_row["val_loss"])
    assert main(["compare", str(tmp_path / "base"), str(tmp_path / "grow"), "--x", "steps", "--at", "10",
                 "--plot", str(plot)]) == 0
    out = capsys.readouterr().out
    assert "equal step" in out and "plot:" in out
    assert main(["compare", str(tmp_path / "base"), "--x", "flops", "--at", "99", "--plot", str(plot)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "only reached step 20" in err


def test_compare_reads_hellaswag_from_eval_reports(tiny_recipe, tmp_path):
    from tinylm.eval.compare import compute_curves
    from tinylm.runs.execute import execute
    from tinylm.train.recipe import load_recipe

    run = tmp_path / "run"
    execute(load_recipe(str(tiny_recipe()), ["train.duration=20", "checkpoint.every=10"]), run)
    (run / "eval" / "step-00000010").mkdir(parents=True)
    (run / "eval" / "step-00000010" / "hellaswag.json").write_text(json.dumps({"acc": 0.25, "acc_norm": 0.26}))
    (run / "eval" / "hellaswag.json").write_text(json.dumps({"acc": 0.3, "acc_norm": 0.31}))
    data = compute_curves([run], "steps")
    row = data["runs"][0]
    assert row["hellaswag_acc"] == [(10, 0.25), (20, 0.3)] and row["equal_compute"]["hellaswag_acc"] == 0.3


def _fake_runs(root, **val_losses):
    for name, val in val_losses.items():
        (root / name).mkdir(parents=True)
        (root / name / "summary.json").write_text(json.dumps({"val_loss": val}))


def test_compare_a_glob_leaves_out_what_is_not_a_run_with_a_note(tmp_path, capsys):
    """The README's tour writes `tinylm eval --ensemble ... --out runs/t12-eval` beside the runs; a plot may
    land there too: `compare runs/*` compares the runs and names each thing it left out on stderr."""
    from tinylm.cli.main import main

    runs = tmp_path / "runs"
    _fake_runs(runs, t1=4.5, t2=4.25)
    (runs / "t12-eval" / "eval").mkdir(parents=True)
    (runs / "t12-eval" / "eval" / "blimp.json").write_text("{}")
    (runs / "compare-flops.png").write_bytes(b"png")
    assert main(["compare", *map(str, sorted(runs.iterdir())), "--metrics", "val_loss"]) == 0
    out, err = capsys.readouterr()
    assert [line.split()[0] for line in out.splitlines()[1:]] == [str(runs / "t1"), str(runs / "t2")]
    notes = err.strip().splitlines()
    assert len(notes) == 2 and all("left out" in n and "not a run" in n for n in notes), err
    assert str(runs / "compare-flops.png") in notes[0] and str(runs / "t12-eval") in notes[1]


def test_compare_a_named_path_or_a_selection_without_runs_is_still_an_error(tmp_path, one_line_error):
    runs = tmp_path / "runs"
    _fake_runs(runs, t1=4.5, t2=4.25)
    (runs / "t12-eval" / "eval").mkdir(parents=True)
    (tmp_path / "plot.png").write_bytes(b"png")
    one_line_error(["compare", str(runs / "t12-eval")], "t12-eval is not a run", "tinylm train")
    one_line_error(["compare", str(runs / "t12-eval"), str(tmp_path / "plot.png")], "none of", "t12-eval")
    one_line_error(["compare", str(runs / "t1"), str(runs / "t9")], "t9 does not exist")
    one_line_error(["compare", str(runs / "t1"), str(runs / "t2"), "--x", "flops", "--reference",
                    str(runs / "t12-eval")], "t12-eval is not a run")
