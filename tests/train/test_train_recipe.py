import pytest

from tinylm.errors import UserError
from tinylm.duration import parse_duration
from tinylm.train.recipe import BUNDLED, apply_overrides, diff_recipes, load_recipe, recipe_changes, recipe_from_dict
from tinylm.train.schedule import Schedule


def test_durations():
    assert parse_duration("10k steps").to_steps(512) == 10_000
    assert parse_duration("61M tokens").to_steps(12 * 512) == round(61e6 / (12 * 512))
    assert parse_duration("2 epochs").to_steps(100, tokens_per_epoch=1000) == 20
    assert parse_duration(300).to_steps(7) == 300
    with pytest.raises(UserError, match="10k steps"):
        parse_duration("ten steps")


def test_overrides_parse_yaml_values_and_create_nested_keys():
    data = apply_overrides({"train": {"lr": 1.0}}, ["train.lr=3e-4", "train.betas=[0.9, 0.99]", "eval.every=5"])
    assert data == {"train": {"lr": 3e-4, "betas": [0.9, 0.99]}, "eval": {"every": 5}}


def test_types_and_choices_are_checked():
    base = {"data": {"store": "s"}, "model": {"name": "L2-4-32x2"}}
    with pytest.raises(UserError, match="train.batch_size"):
        recipe_from_dict({**base, "train": {"batch_size": "many"}})
    with pytest.raises(UserError, match="fp32, bf16, fp16"):
        recipe_from_dict({**base, "train": {"precision": "fp8"}})
    with pytest.raises(UserError, match="reduce-overhead"):
        recipe_from_dict({**base, "train": {"compile_mode": "cudagraphs"}})
    with pytest.raises(UserError, match="`train.parallel` is 'zero3': choose one of ddp, fsdp"):
        recipe_from_dict({**base, "train": {"parallel": "zero3"}})
    assert recipe_from_dict(base).train.parallel == "ddp"
    fsdp = recipe_from_dict({**base, "train": {"parallel": "fsdp"}})
    assert recipe_changes(recipe_from_dict(base).to_dict(), fsdp.to_dict()) == []  # resumes either way, no --force
    with pytest.raises(UserError, match="exactly one of"):
        recipe_from_dict({"data": {}, "model": {"name": "x"}})
    assert recipe_from_dict({**base, "train": {"lr": "1e-3"}}).train.lr == 1e-3


def test_diff_names_dotted_keys():
    assert diff_recipes({"a": {"b": 1, "c": 2}, "d": 3}, {"a": {"b": 1, "c": 5}, "d": 4}) == ["a.c", "d"]


@pytest.mark.parametrize("shape", ["linear", "cosine", "constant"])
def test_schedules_start_at_peak_and_restart(shape):
    s = Schedule(shape, warmup=0, cycle_length=100)
    assert s.factor(0) == 1.0
    end = s.factor(100)
    assert end == (1.0 if shape == "constant" else 0.0)
    s.restart(100, 50)
    assert s.factor(100) == 1.0 and s.factor(150) == end


def test_warmup_is_linear():
    s = Schedule("cosine", warmup=10, cycle_length=100)
    assert [round(s.factor(i), 3) for i in (0, 4, 9)] == [0.1, 0.5, 1.0]


def test_every_bundled_recipe_loads():
    names = sorted(p.stem for p in BUNDLED.glob("*.yaml"))
    assert "demo" in names
    for name in names:
        assert load_recipe(name).name
