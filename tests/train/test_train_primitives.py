"""Each Run primitive does exactly what it says, and logs an event."""

import torch

from tinylm.train.loop import train, train_step
from tinylm.rundir.metrics import read_metrics
from tinylm.methods.base import Method


def _steps(run, n):
    scaler = torch.amp.GradScaler("cpu", enabled=False)
    for _ in range(n):
        train_step(run, scaler)


def _weights(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_reset_optimizer_resets_exactly_the_named_params(make_run):
    run = make_run()
    _steps(run, 3)
    emb = dict(run.model.named_parameters())["embed_tokens.weight"]
    others = {n: {k: v.clone() for k, v in run.optimizer.state[p].items()}
              for n, p in run.model.named_parameters() if p is not emb}
    run.reset_optimizer(["embed_tokens.weight"])
    assert emb not in run.optimizer.state or not run.optimizer.state[emb]
    for n, p in run.model.named_parameters():
        if p is not emb:
            assert all(torch.equal(run.optimizer.state[p][k], v) for k, v in others[n].items()), n
    _steps(run, 1)  # the reset parameter starts counting again; the others go on
    assert float(run.optimizer.state[emb]["step"]) == 1
    assert float(next(run.optimizer.state[p]["step"] for p in run.model.parameters() if p is not emb)) == 4
    run.reset_optimizer()
    assert not any(run.optimizer.state[p] for p in run.model.parameters())


def test_restart_schedule_begins_a_new_cycle(make_run):
    run = make_run(steps=100, schedule="linear")
    _steps(run, 10)
    assert run.schedule.factor(run.step) < 1.0
    run.restart_schedule(20)
    assert run.schedule.factor(run.step) == 1.0
    assert abs(run.schedule.factor(run.step + 10) - 0.5) < 1e-9
    assert run.schedule.factor(run.step + 20) == 0.0


def test_rebuild_model_keeps_weights_only(make_run):
    run = make_run()
    _steps(run, 3)
    before, old_model = _weights(run.model), run.model
    run.rebuild_model()
    assert run.model is not old_model
    assert _equal(before, _weights(run.model))
    assert not any(p.data_ptr() == q.data_ptr() for p, q in zip(run.model.parameters(), old_model.parameters()))
    assert not any(run.optimizer.state[p] for p in run.model.parameters())  # optimizer fresh
    assert set(map(id, run.optimizer.param_groups[0]["params"])) <= set(map(id, run.model.parameters()))
    _steps(run, 1)  # and it trains
    assert not _equal(before, _weights(run.model))


def test_reinit_draws_the_models_own_init_for_those_params_only(make_run):
    run = make_run()
    _steps(run, 3)
    before = _weights(run.model)
    name = "embed_tokens.weight"
    torch.manual_seed(7)
    run.reinit([name])
    after = _weights(run.model)
    assert not torch.equal(before[name], after[name])
    assert all(torch.equal(before[k], after[k]) for k in before if k != name)
    expected = torch.empty_like(after[name])
    torch.manual_seed(7)
    run.model.init_parameter_(name, expected)
    assert torch.equal(expected, after[name])


def test_set_trainable_freezes_and_optimizer_follows(make_run):
    run = make_run(weight_decay=1.0)
    _steps(run, 2)
    run.set_trainable(lambda name, p: name.startswith("layers.1."))
    frozen_before = {n: p.detach().clone() for n, p in run.model.named_parameters() if not p.requires_grad}
    in_optimizer = {id(p) for g in run.optimizer.param_groups for p in g["params"]}
    assert in_optimizer == {id(p) for p in run.model.parameters() if p.requires_grad}
    _steps(run, 3)
    for n, p in run.model.named_parameters():
        if n in frozen_before:
            assert torch.equal(p, frozen_before[n]), f"{n} moved while frozen (update or weight decay)"
    run.set_trainable(lambda name, p: True)
    assert sum(len(g["params"]) for g in run.optimizer.param_groups) == len(list(run.model.parameters()))


def test_grow_appends_trainable_layers(make_run):
    run = make_run()
    _steps(run, 2)
    n0, flops0 = run.model.config.n_layers, run.flops_per_token
    names = run.grow(2)
    assert run.model.config.n_layers == n0 + 2 and len(run.model.layers) == n0 + 2
    assert names and all(n.startswith(("layers.2.", "layers.3.")) for n in names)
    assert run.flops_per_token > flops0
    new = dict(run.model.named_parameters())
    before = {n: new[n].detach().clone() for n in names}
    _steps(run, 1)
    assert any(not torch.equal(new[n], before[n]) for n in names)


def test_snapshot_and_rollback_restore_bitwise(make_run, tmp_path):
    for out_dir in (None, tmp_path / "run"):
        run = make_run(out_dir=out_dir)
        _steps(run, 2)
        run.snapshot("best")
        weights = _weights(run.model)
        moments = {n: run.optimizer.state[p]["exp_avg"].clone() for n, p in run.model.named_parameters()}
        _steps(run, 3)
        assert not _equal(weights, _weights(run.model))
        run.rollback("best")
        assert _equal(weights, _weights(run.model))
        assert all(torch.equal(run.optimizer.state[p]["exp_avg"], moments[n]) for n, p in run.model.named_parameters())


def test_every_primitive_logs_an_event(make_run, tmp_path):
    run = make_run(out_dir=tmp_path / "run")
    _steps(run, 1)
    run.reset_optimizer()
    run.restart_schedule(5)
    run.snapshot("a")
    run.rollback("a")
    run.reinit(["embed_tokens.weight"])
    run.set_trainable(lambda n, p: True)
    run.grow(1)
    run.rebuild_model()
    run.metrics.close()
    events = [r["event"] for r in read_metrics(tmp_path / "run" / "metrics.jsonl") if "event" in r]
    assert events == ["reset_optimizer", "restart_schedule", "snapshot", "rollback", "reinit", "set_trainable",
                      "grow", "rebuild_model"]


def test_training_lowers_loss_on_a_learnable_stream(make_run):
    run = make_run(steps=30)
    run.batches.vocab_size = 5  # a tiny alphabet: the unigram distribution alone is learnable
    first = train_step(run, torch.amp.GradScaler("cpu", enabled=False))[0].item()
    last = train(run)["loss"]
    assert last < first - 1.0


def test_set_hyperparameters_changes_lr_and_decay_only_where_decayed(make_run):
    run = make_run(lr=1e-2, weight_decay=0.1)
    _steps(run, 1)
    run.set_hyperparameters(lr=5e-3, weight_decay=0.5)
    groups = run.optimizer.param_groups
    assert all(g["base_lr"] == 5e-3 for g in groups)
    assert sorted(g["weight_decay"] for g in groups) == [0.0, 0.5]
    run.grow(1)  # a rebuilt optimizer keeps the changed values
    assert all(g["base_lr"] == 5e-3 for g in run.optimizer.param_groups)


def test_set_lr_scale_scales_exactly_those_params(make_run):
    run = make_run(schedule="constant", weight_decay=0.0)
    _steps(run, 1)
    emb = ["embed_tokens.weight"]
    run.set_lr_scale(emb, 0.0)  # a zero learning rate: embeddings must not move, the rest must
    before = _weights(run.model)
    _steps(run, 2)
    after = _weights(run.model)
    assert torch.equal(before["embed_tokens.weight"], after["embed_tokens.weight"])
    assert not torch.equal(before["layers.0.attn.o_proj.weight"], after["layers.0.attn.o_proj.weight"])
    n_groups = len(run.optimizer.param_groups)
    run.set_lr_scale(emb, 0.5, log=False)  # same partition: updated in place, no rebuild
    assert len(run.optimizer.param_groups) == n_groups
    assert [g["lr_scale"] for g in run.optimizer.param_groups if "embed_tokens.weight" in g["names"]] == [0.5]


def test_finish_ends_the_run_as_complete(make_run):
    class StopAt3(Method):
        name = "stop-at-3"
        def on_step_end(self, run):
            if run.step == 3:
                run.finish("enough")

    run = make_run(methods=[StopAt3(None)], steps=10)
    train(run)
    assert run.step == 3 and run.finished_early
