"""forget (active forgetting): both halves of a reset, the window, the embedding-only schedule, the
cyclic schedule, bad options, and train -> checkpoint -> resume bitwise equal.
"""

import logging

import pytest
import torch

from tinylm.cli.main import main
from tinylm.errors import UserError
from tinylm.methods import build_methods
from tinylm.train.loop import train, train_step
from tinylm.rundir.metrics import read_metrics
from tinylm.train.recipe import load_recipe, recipe_from_dict
from tinylm.train.run import Run


class Batches:
    """Random token windows, deterministic by position (pad id 0 included)."""

    def __init__(self, seed=0):
        self.seed, self.position = seed, 0

    def next_batch(self):
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.position)
        self.position += 1
        w = torch.randint(97, (4, 17), generator=g)
        return {"input_ids": w[:, :-1], "labels": w[:, 1:]}

    def state_dict(self):
        return {"position": self.position}

    def load_state_dict(self, state):
        self.position = state["position"]


def _run(methods, flavour="gemma", pad=0, steps=20, out_dir=None, **train_section):
    """A small in-memory run whose model has a padding row (make_run's has none)."""
    from tinylm.models import build_model, resolve_model_config
    recipe = recipe_from_dict({"data": {"store": "unused", "seq_len": 16}, "model": {"name": "L2-4-32x2"},
                               "train": {"batch_size": 4, "duration": steps, "lr": 1e-2, **train_section}})
    torch.manual_seed(0)
    cfg = resolve_model_config("L2-4-32x2", flavour=flavour, vocab_size=97, max_seq_len=64, pad_token_id=pad)
    return Run(recipe, build_model(cfg), Batches(), [Batches(seed=99).next_batch()],
               torch.device("cpu"), steps, build_methods(methods), out_dir=out_dir)


def _steps(run, n):
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    for _ in range(n):
        train_step(run, scaler)


def test_a_reset_redraws_the_embeddings_and_resets_exactly_their_optimizer_state():
    run = _run([{"forget": {"every": 3}}])  # gemma: the output layer is tied to the embeddings
    forget = run.methods[0]
    forget.on_start(run)
    run.methods = []  # drive the method by hand, at the reset point
    params = dict(run.model.named_parameters())
    emb = params["embed_tokens.weight"]
    init_std = float(emb.detach()[1:].std())
    _steps(run, 3)
    before = emb.detach().clone()
    assert before[0].abs().sum() > 0  # tied: the pad row learned through the output layer
    others = {n: {k: v.clone() for k, v in run.optimizer.state[p].items()} for n, p in params.items() if p is not emb}
    forget.on_step_start(run)  # run.step == 3 == k
    assert forget.resets == 1 and run.optimizer.state.get(emb, {}) == {}
    assert not torch.equal(emb, before) and torch.all(emb[0] == 0)  # fresh draw, padding row zero
    assert abs(float(emb.detach()[1:].std()) - init_std) < 0.1 * init_std  # drawn like the model's own init
    for n, p in params.items():
        if p is not emb:
            assert run.optimizer.state[p].keys() == others[n].keys()
            assert all(torch.equal(run.optimizer.state[p][k], v) for k, v in others[n].items()), n
    _steps(run, 1)
    assert float(run.optimizer.state[emb]["step"]) == 1
    assert all(float(run.optimizer.state[p]["step"]) == 4 for p in params.values() if p is not emb)


def test_untied_output_is_kept_unless_asked(tmp_path):
    for params, expected in ((["embeddings"], {"embed_tokens.weight"}),
                             (["embeddings", "output"], {"embed_tokens.weight", "lm_head.weight"})):
        run = _run([{"forget": {"every": 2, "params": params}}], flavour="llama", steps=3)
        _steps(run, 2)
        trained = {n: p.detach().clone() for n, p in run.model.named_parameters()}
        run.methods[0].on_start(run)
        run.methods[0].on_step_start(run)
        changed = {n for n, p in run.model.named_parameters() if not torch.equal(p, trained[n])}
        assert changed == expected  # only those were re-drawn


def test_window_and_embedding_schedule(Watch, tmp_path):
    options = {"every": 4, "start": 5, "end": 12, "embedding_schedule": True, "embedding_warmup": 0.5}
    run = _run([{"forget": options}], steps=20, out_dir=tmp_path)
    scale = Watch(lambda r: next(g["lr_scale"] for g in r.optimizer.param_groups if "embed_tokens.weight" in g["names"]))
    run.methods.append(scale)
    train(run)
    run.metrics.close()
    resets = [r["step"] for r in read_metrics(tmp_path / "metrics.jsonl") if r.get("event") == "reinit"]
    assert resets == [8, 12]  # 4 is before start, 16 after end
    # Warm up over 2 steps, then decay, within each 4-step window that ends in a reset; 1.0 elsewhere.
    assert scale.values == [1.0] * 4 + [0.5, 1.0, 1.0, 0.5] * 2 + [1.0] * 8


def test_cyclic_restarts_the_whole_schedule_every_k(Watch):
    run = _run([{"forget": {"every": 4, "cyclic": True}}], steps=10, schedule="linear")
    factor = Watch(lambda r: r.schedule.factor(r.step))
    run.methods.append(factor)
    train(run)
    assert factor.values == pytest.approx([1.0, 0.75, 0.5, 0.25] * 2 + [1.0, 0.75])


@pytest.mark.parametrize("options, needle", [
    ({"every": 0}, "every is 0"),
    ({"start": 10, "end": 5}, "before start"),
    ({"params": []}, "non-empty"),
    ({"embedding_warmup": 1.5}, "fraction of k"),
    ({"cyclic": "yes"}, "true or false"),
])
def test_bad_options_are_one_line_errors(options, needle):
    with pytest.raises(UserError, match="method 'forget'") as e:
        build_methods([{"forget": options}])
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_mistakes_found_at_start(caplog):
    with pytest.raises(UserError, match="no reset inside this 10-step run"):
        train(_run([{"forget": {"every": 10}}], steps=10))
    with pytest.raises(UserError, match="no reset inside"):
        train(_run([{"forget": {"every": 3, "start": 20}}], steps=10))
    with pytest.raises(UserError, match="no positions parameter"):
        train(_run([{"forget": {"every": 3, "params": ["positions"]}}], flavour="llama", steps=10))
    with pytest.raises(UserError, match="never leave its warmup"):
        train(_run([{"forget": {"every": 3, "cyclic": True}}], steps=10, warmup=5))
    with caplog.at_level(logging.WARNING):  # the default k on a short run: a warning, not an error
        train(_run(["forget"], steps=3))
    assert "nothing will be forgotten" in caplog.text


def test_k_larger_than_the_run_from_the_cli(capsys, tiny_recipe, tmp_path):
    path = tiny_recipe(methods=[{"forget": {"every": 100}}])
    assert main(["train", str(path), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "every < 40" in err and "Traceback" not in err, err
    assert not (tmp_path / "r" / "checkpoints").exists()  # nothing half-written: config.yaml at most
    assert main(["train", str(tiny_recipe(methods=[{"forget": {"every": 10}}])), "--out", str(tmp_path / "r"),
                 "--quiet", "--set", "train.duration=12"]) == 0  # the fixed recipe starts afresh there


def test_resume_is_bitwise(tiny_recipe, tmp_path, resumes_exactly):
    # Untied output reset too, windows that end before the resume point (the embedding LR scale
    # returns to 1.0 there), and cyclic LR: schedule restarts on both sides of step 10.
    options = {"every": 3, "end": 9, "params": ["embeddings", "output"], "embedding_schedule": True,
               "cyclic": True}
    recipe = load_recipe(str(tiny_recipe(methods=[{"forget": options}])), ["checkpoint.every=0", "train.duration=20"])
    resumes_exactly(recipe, stop_at=10)
    resets = [r["step"] for r in read_metrics(tmp_path / "resumed" / "metrics.jsonl") if r.get("event") == "reinit"]
    assert resets == [3, 6, 9]
