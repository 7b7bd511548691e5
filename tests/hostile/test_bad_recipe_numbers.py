"""Numbers that make no sense are refused when the recipe loads (issue 16, class 4), naming the key's path.

Each case is `tinylm train RECIPE --out DIR --set KEY=VALUE`: exit 2, one line naming the key, nothing
written into DIR. Before: `lr: 1e6` "finished" with val loss NaN, `keep: 0` or `duration: 0` were taken,
negative eps or `betas: [0.9]` crashed inside the optimizer, `batch_size: 1e12` tried to allocate 7 TiB.
"""

import pytest

from tinylm.errors import UserError
from tinylm.train.recipe import BUNDLED, load_recipe

# (--set values, the text the one line must hold)
CASES = [
    # learning rate: positive, finite, at most 1
    (["train.lr=0"], "train.lr"), (["train.lr=1e6"], "train.lr"), (["train.lr=.inf"], "train.lr"),
    (["train.lr=inf"], "train.lr"), (["train.lr=.nan"], "train.lr"), (["train.lr=nan"], "train.lr"),
    (["train.lr=-1e-3"], "train.lr"), (["train.lr=abc"], "train.lr"), (["train.lr=true"], "train.lr"),
    (["train.lr=[1e-3]"], "train.lr"), (["train.lr="], "train.lr"),
    # the optimizer's other numbers
    (["train.weight_decay=-0.1"], "train.weight_decay"), (["train.weight_decay=.inf"], "train.weight_decay"),
    (["train.weight_decay=1000"], "lr * weight_decay"),
    (["train.eps=0"], "train.eps"), (["train.eps=-1e-8"], "train.eps"), (["train.eps=.nan"], "train.eps"),
    (["train.betas=[0.9]"], "train.betas"), (["train.betas=[0.9, 1.0]"], "train.betas"),
    (["train.betas=[-0.1, 0.9]"], "train.betas"), (["train.betas=[0.9, 0.95, 0.99]"], "train.betas"),
    (["train.betas=[]"], "train.betas"), (["train.betas=[0.9, .nan]"], "train.betas"),
    (["train.betas=[a, b]"], "train.betas[0]"), (["train.betas.1=1.5"], "train.betas"),
    (["train.clip=-1"], "train.clip"), (["train.clip=.inf"], "train.clip"),
    # the schedule
    (["train.warmup=-1"], "train.warmup"), (["train.warmup=1.5"], "train.warmup"),
    (["train.min_lr_ratio=5"], "train.min_lr_ratio"), (["train.min_lr_ratio=-0.1"], "train.min_lr_ratio"),
    (["train.duration=0"], "train.duration"), (["train.duration=0 steps"], "train.duration"),
    (["train.duration=0 tokens"], "train.duration"), (["train.duration=-3"], "train.duration"),
    (["train.duration=1e400 steps"], "train.duration"), (["train.duration=ten steps"], "train.duration"),
    # sizes
    (["train.batch_size=1e12"], "train.batch_size"), (["train.batch_size=0"], "train.batch_size"),
    (["train.batch_size=-4"], "train.batch_size"), (["train.batch_size=2.5"], "train.batch_size"),
    (["train.grad_accum=0"], "train.grad_accum"), (["train.grad_accum=1e9"], "train.grad_accum"),
    (["data.seq_len=0"], "data.seq_len"), (["data.seq_len=1e9"], "data.seq_len"),
    (["model.vocab_size=abc"], "model.vocab_size"), (["model.vocab_size=-5"], "model.vocab_size"),
    (["model.vocab_size=1.5"], "model.vocab_size"), (["model.vocab_size=true"], "model.vocab_size"),
    (["eval.batch_size=0"], "eval.batch_size"), (["eval.windows=0"], "eval.windows"),
    (["eval.windows=1e12"], "eval.windows"),
    # a model whose training state cannot fit the device (checked before it is allocated)
    (["model.d_model=10000000"], "parameters"), (["model.name=L200-64-16384x4"], "GiB"),
    # counts of steps and seeds
    (["eval.every=-1"], "eval.every"), (["train.log_every=-1"], "train.log_every"),
    (["train.log_every=0"], "train.log_every"), (["checkpoint.every=-5"], "checkpoint.every"),
    (["checkpoint.keep=0"], "checkpoint.keep"), (["checkpoint.keep=-1"], "checkpoint.keep"),
    (["train.seed=-1"], "train.seed"), (["data.seed=-1"], "data.seed"), (["eval.seed=-1"], "eval.seed"),
    (["data.split_seed=-1"], "data.split_seed"), (["train.seed=1e30"], "train.seed"),
    (["train.threads=-1"], "train.threads"),
    # fractions
    (["data.val_fraction=1.5"], "data.val_fraction"), (["data.mlm_probability=0"], "data.mlm_probability"),
    # methods' numbers, checked at load too (a method's options are part of the recipe)
    (["methods=[{sleep: {episode: 0}}]"], "episode"), (["methods=[{sleep: {episode: -10}}]"], "episode"),
    (["methods=[{sleep: {patience: 0}}]"], "patience"), (["methods=[{forget: {every: 0}}]"], "every"),
    (["methods=[{forget: {embedding_warmup: 2}}]"], "embedding_warmup"),
    (["methods=[{grow: {stages: 0}}]"], "stages"), (["methods=[{grow: {stage: 0 steps}}]"], "stage"),
    (["methods=[{distill: {teachers: [x], alpha: 2}}]"], "alpha"),
    (["methods=[{distill: {teachers: [x], temperature: 0}}]"], "temperature"),
]


@pytest.mark.parametrize("overrides,needle", CASES, ids=[" ".join(c[0]) for c in CASES])
def test_nonsense_number_is_refused_at_load(overrides, needle, assert_user_error, tiny_recipe, tmp_path):
    out = tmp_path / "run"
    argv = ["train", tiny_recipe(), "--out", out]
    for item in overrides:
        argv += ["--set", item]
    assert_user_error(argv, needle, watch=[out])


def test_the_message_gives_the_range_and_why():
    with pytest.raises(UserError) as e:
        load_recipe("gpt2-tiny", ["train.batch_size=1e12"])
    assert "at least 1 and at most 65536" in str(e.value) and "grad_accum" in str(e.value)
    with pytest.raises(UserError, match=r"above 0 and at most 1"):
        load_recipe("gpt2-tiny", ["train.lr=0"])


def test_every_bundled_recipe_is_within_the_ranges():
    for path in sorted(BUNDLED.glob("*.yaml")):
        load_recipe(str(path))


def test_sane_edge_values_still_load():
    recipe = load_recipe("gpt2-tiny", ["train.lr=1", "train.weight_decay=0", "train.clip=0", "train.warmup=0",
                                       "train.min_lr_ratio=1", "train.betas=[0, 0.999]", "checkpoint.keep=1",
                                       "train.batch_size=1e3", "eval.every=0", "train.seed=0"])
    assert recipe.train.batch_size == 1000 and recipe.train.lr == 1.0


# Numbers given on the command line: the same rule, one line naming the option.
CLI_CASES = {
    "prepare --workers -1": (lambda c: ["prepare", c.corpus, "--tokenizer", "gpt2", "--out", c.out, "--workers", "-1"],
                             "--workers"),
    "prepare --val-fraction 1.5": (lambda c: ["prepare", c.corpus, "--tokenizer", "gpt2", "--out", c.out,
                                              "--val-fraction", "1.5"], "val fraction"),
    "prepare --val-fraction nan": (lambda c: ["prepare", c.corpus, "--tokenizer", "gpt2", "--out", c.out,
                                              "--val-fraction", "nan"], "val fraction"),
    "prepare --test-fraction -1": (lambda c: ["prepare", c.corpus, "--tokenizer", "gpt2", "--out", c.out,
                                              "--test-fraction", "-1"], "test fraction"),
    "prepare --seed -1": (lambda c: ["prepare", c.corpus, "--tokenizer", "gpt2", "--out", c.out, "--seed", "-1"],
                          "seed"),
    "adapt --target-loss nan": (lambda c: ["adapt", c.run, "--corpus", c.corpus, "--out", c.out, "--target-loss",
                                           "nan"], "--target-loss"),
    "adapt --target-loss -1": (lambda c: ["adapt", c.run, "--corpus", c.corpus, "--out", c.out, "--target-loss",
                                          "-1"], "--target-loss"),
    "surgery --seed -1": (lambda c: ["surgery", "reset-embeddings", c.run, "--out", c.out, "--seed", "-1"], "--seed"),
    "data subset --seed -1": (lambda c: ["data", "subset", c.store, "--words", "1k", "--out", c.out, "--seed", "-1"],
                              "seed"),
    "data paragraphs --count 0": (lambda c: ["data", "paragraphs", c.store, "--count", "0", "--out", c.out],
                                  "--count"),
    "data paragraphs --seed -1": (lambda c: ["data", "paragraphs", c.store, "--count", "5", "--out", c.out, "--seed",
                                             "-1"], "--seed"),
    "data subset --words 0": (lambda c: ["data", "subset", c.store, "--words", "0", "--out", c.out], "0"),
    "eval --limit 0": (lambda c: ["eval", c.run, "--val", c.store, "--limit", "0", "--out", c.out], "--limit"),
    "eval --val-windows -1": (lambda c: ["eval", c.run, "--val", c.store, "--val-windows", "-1", "--out", c.out],
                              "--val-windows"),
    "eval --batch-tokens 0": (lambda c: ["eval", c.run, "--val", c.store, "--batch-tokens", "0", "--out", c.out],
                              "--batch-tokens"),
    "train --seeds 0": (lambda c: ["train", c.recipe, "--out", c.out, "--seeds", "0"], "--seeds"),
    "train --seeds -1,2": (lambda c: ["train", c.recipe, "--out", c.out, "--seeds=-1,2"], "--seeds"),
    "sweep --trials 0": (lambda c: ["sweep", c.recipe, "--out", c.out, "--trials", "0", "--yes"], "--trials"),
    "generate --seed -1": (lambda c: ["generate", c.run, "--prompt", "Alice", "--seed", "-1"], "--seed"),
    "generate --tokens 0": (lambda c: ["generate", c.run, "--prompt", "Alice", "--tokens", "0"], "tokens"),
    "generate --temperature nan": (lambda c: ["generate", c.run, "--prompt", "Alice", "--temperature", "nan"],
                                   "temperature"),
    "generate --top-k -1": (lambda c: ["generate", c.run, "--prompt", "Alice", "--top-k", "-1"], "top"),
    "generate --top-p 0": (lambda c: ["generate", c.run, "--prompt", "Alice", "--top-p", "0"], "top-p"),
    "generate --top-p 1.5": (lambda c: ["generate", c.run, "--prompt", "Alice", "--top-p", "1.5"], "top-p"),
    "generate --num-samples 0": (lambda c: ["generate", c.run, "--prompt", "Alice", "--num-samples", "0"],
                                 "samples"),
    "sweep --seed -1": (lambda c: ["sweep", c.recipe, "--out", c.out, "--seed", "-1", "--yes"], "--seed"),
    "adapt --seed -1": (lambda c: ["adapt", c.run, "--corpus", c.corpus, "--out", c.out, "--seed", "-1"], "--seed"),
    "sweep --layers 0:0": (lambda c: ["sweep", c.recipe, "--out", c.out, "--layers", "0:0", "--yes"], "--layers"),
}


@pytest.fixture
def cli(pretrained, tiny_store, tiny_recipe, book, tmp_path):
    from types import SimpleNamespace

    corpus = tmp_path / "corpus.txt"
    corpus.write_text(book("AliceInWonderland")[:5_000])
    return SimpleNamespace(run=pretrained, store=tiny_store, recipe=tiny_recipe(), corpus=corpus, out=tmp_path / "out")


@pytest.mark.parametrize("case", sorted(CLI_CASES))
def test_a_nonsense_number_on_the_command_line_is_one_line(case, cli, assert_user_error):
    argv, needle = CLI_CASES[case]
    assert_user_error(argv(cli), needle, watch=[cli.out])
