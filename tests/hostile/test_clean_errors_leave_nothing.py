"""A clean error leaves nothing behind (issue 16, class 8): the whole recipe, methods included, is checked
before a run directory, a config.yaml, a metrics.jsonl or an adaptation's store is created.

Before: `train` with an unknown freeze parameter, a missing distill teacher, a grow plan longer than the run
or sleep beside a cyclic forget wrote $OUT/config.yaml (and metrics.jsonl) and then failed at the loop's
start; `adapt` with a bad duration, LR or --set prepared $OUT/store first.
"""

import json

import pytest

# (methods, train overrides, the text the one line must hold): each fits the recipe only at build time,
# when the model and the run's length are known
METHOD_CASES = {
    "freeze-unknown-parameter": ([{"freeze": {"train": ["no_such.weight"]}}], {}, "no_such.weight"),
    "freeze-role-the-model-lacks": ([{"freeze": {"train": ["positions"]}}], {}, "positions"),
    "forget-unknown-parameter": ([{"forget": {"params": ["nowhere"], "every": 5}}], {}, "nowhere"),
    "forget-role-the-model-lacks": ([{"forget": {"params": ["positions"], "every": 5}}], {}, "positions"),
    "forget-no-reset-inside-the-run": ([{"forget": {"every": 500}}], {}, "no reset inside"),
    "forget-cyclic-beside-sleep": ([{"sleep": {"episode": "10 steps", "policy": "light"}},
                                    {"forget": {"every": 5, "cyclic": True}}], {}, "cyclic"),
    "forget-cyclic-within-warmup": ([{"forget": {"every": 5, "cyclic": True}}], {"warmup": 8}, "train.warmup"),
    "distill-missing-teacher": ([{"distill": {"teachers": ["/nonexistent/teacher-run"]}}], {},
                                "/nonexistent/teacher-run"),
    "grow-plan-longer-than-the-run": ([{"grow": {"stages": 2, "stage": "100 steps"}}], {}, "stages take"),
    "grow-more-stages-than-layers": ([{"grow": {"stages": 3}}], {}, "stages <= 2"),
    "grow-stage-of-one-step": ([{"grow": {"stages": 2, "stage": "1 steps"}}], {}, "at least 2"),
    "grow-beside-sleep-paper-policy": ([{"grow": {"stages": 2}}, {"sleep": {"episode": "10 steps"}}], {},
                                       "paper policy"),
    "grow-stage-schedule-beside-sleep": ([{"grow": {"stages": 2, "schedule": "stage"}},
                                          {"sleep": {"episode": "10 steps", "policy": "light"}}], {}, "schedule"),
    "two-soft-target-givers": ([{"distill": {"teachers": ["a"]}}, {"distill": {"teachers": ["b"]}}], {},
                               "soft targets"),
}


@pytest.mark.parametrize("case", sorted(METHOD_CASES))
def test_a_method_that_does_not_fit_the_run_writes_nothing(case, assert_user_error, tiny_recipe, tmp_path):
    methods, train, needle = METHOD_CASES[case]
    path = tiny_recipe(methods=methods, train={"duration": "40 steps", "batch_size": 4, "lr": 3e-3, "log_every": 5,
                                               "precision": "fp32", **train})
    out = tmp_path / "run"
    assert_user_error(["train", path, "--out", out], needle, watch=[out])


@pytest.mark.parametrize("case", ["freeze-unknown-parameter", "grow-plan-longer-than-the-run",
                                  "forget-cyclic-beside-sleep", "distill-missing-teacher"])
def test_a_run_that_never_checkpointed_keeps_its_files_on_a_refused_restart(case, assert_user_error, tiny_recipe,
                                                                           tmp_path):
    """A run stopped before its first checkpoint starts again from scratch, but only with a recipe that is
    good: a bad one leaves its config.yaml and metrics.jsonl as they were (they used to be replaced/deleted)."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("name: earlier\n")
    (out / "metrics.jsonl").write_text(json.dumps({"step": 5, "loss": 9.0}) + "\n")
    methods, train, needle = METHOD_CASES[case]
    path = tiny_recipe(methods=methods, train={"duration": "40 steps", "batch_size": 4, "lr": 3e-3, "log_every": 5,
                                               "precision": "fp32", **train})
    assert_user_error(["train", path, "--out", out], needle, watch=[out])


def test_methods_options_are_refused_by_the_recipe_itself(tiny_recipe):
    """Option mistakes a method can see without a model are the recipe's: `load_recipe` refuses them."""
    from tinylm.errors import UserError
    from tinylm.train.recipe import load_recipe

    with pytest.raises(UserError, match="unknown method 'slep'"):
        load_recipe(str(tiny_recipe(methods=["slep"])))
    with pytest.raises(UserError, match="no option 'evry'"):
        load_recipe(str(tiny_recipe(methods=[{"forget": {"evry": 5}}])))


ADAPT_CASES = [
    (["--duration", "0"], "duration"), (["--duration", "ten steps"], "duration"), (["--duration", "-5"], "duration"),
    (["--lr", "0"], "train.lr"), (["--lr", "-1"], "train.lr"), (["--lr", "nan"], "train.lr"),
    (["--lr", "inf"], "train.lr"), (["--lr", "1e6"], "train.lr"), (["--seed", "-1"], "--seed"),
    (["--set", "train.lr=[1,"], "--set"), (["--set", "train.batch_size=0"], "train.batch_size"),
    (["--set", "train.nope=1"], "train.nope"), (["--set", "checkpoint.keep=0"], "checkpoint.keep"),
    (["--set", "methods.0.freeze.train=[]"], "freeze"), (["--set", "methods.0.slep={}"], "slep"),
]


@pytest.mark.parametrize("extra,needle", ADAPT_CASES, ids=[" ".join(c[0]) for c in ADAPT_CASES])
def test_adapt_with_a_bad_recipe_prepares_no_store(extra, needle, assert_user_error, pretrained, book, tmp_path):
    corpus = tmp_path / "new-language.txt"
    corpus.write_text(book("AliceInWonderland")[:20_000])
    out = tmp_path / "adapted"
    assert_user_error(["adapt", pretrained, "--corpus", corpus, "--tokenizer", "bpe:300", "--out", out, *extra],
                      needle, watch=[out])
