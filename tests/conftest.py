"""Shared fixtures: the shared data folder beside the repository (CI puts it there)."""

from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    assert SHARED_DATA.is_dir(), f"tests need ../shared/data beside the repository (looked in {SHARED_DATA})"
    return SHARED_DATA


class SyntheticBatches:
    """Random token windows, deterministic by position: a stand-in sampler for loop-level tests."""

    def __init__(self, vocab_size: int = 97, batch_size: int = 4, seq_len: int = 16, seed: int = 0):
        self.vocab_size, self.batch_size, self.seq_len, self.seed = vocab_size, batch_size, seq_len, seed
        self.position = 0

    def next_batch(self) -> dict:
        import torch
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.position)
        self.position += 1
        w = torch.randint(self.vocab_size, (self.batch_size, self.seq_len + 1), generator=g)
        return {"input_ids": w[:, :-1], "labels": w[:, 1:]}

    def state_dict(self) -> dict:
        return {"position": self.position}

    def load_state_dict(self, state: dict) -> None:
        self.position = int(state["position"])


@pytest.fixture
def make_run():
    """Build a small in-memory Run (no store, no run directory) for primitive tests."""
    def build(methods=(), out_dir=None, steps=10, model="L2-4-32x2", flavour="llama", **train):
        import torch

        from tinylm.models import build_model, resolve_model_config
        from tinylm.train.recipe import recipe_from_dict
        from tinylm.train.run import Run

        recipe = recipe_from_dict({"data": {"store": "unused", "seq_len": 16},
                                   "model": {"name": model, "flavour": flavour},
                                   "train": {"batch_size": 4, "duration": steps, "lr": 1e-2, **train}})
        torch.manual_seed(0)
        cfg = resolve_model_config(model, flavour=flavour, vocab_size=97, max_seq_len=64)
        val = [SyntheticBatches(seed=99).next_batch()]
        return Run(recipe, build_model(cfg), SyntheticBatches(), val, torch.device("cpu"), steps, list(methods),
                   out_dir=out_dir)
    return build


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory, shared_data):
    """A GPT-2 token store of a few hundred KB of Alice in Wonderland (prepared once per session)."""
    from tinylm.data import prepare_store

    src = tmp_path_factory.mktemp("corpus") / "alice.txt"
    src.write_text((shared_data / "corpora/gutenberg/AliceInWonderland.txt").read_text()[:120_000])
    out = tmp_path_factory.mktemp("stores") / "alice-gpt2"
    prepare_store([str(src)], "gpt2", out, val_fraction=0.1, seed=0, docs="paragraph")
    return out


@pytest.fixture
def tiny_recipe(tmp_path, tiny_store):
    """Write a tiny decoder recipe on `tiny_store`; keyword overrides are merged per section."""
    import yaml

    def write(name="tiny", **sections):
        data = {"name": name,
                "data": {"store": str(tiny_store), "seq_len": 32, "sampler": "windows"},
                "model": {"name": "L2-4-32x2", "flavour": "llama"},
                "train": {"duration": "40 steps", "batch_size": 4, "lr": 3e-3, "log_every": 5},
                "eval": {"every": 20, "windows": 8, "batch_size": 8},
                "checkpoint": {"every": 20}}
        for key, value in sections.items():
            if isinstance(value, dict) and isinstance(data.get(key), dict):
                data[key] = {**data[key], **value}
            else:
                data[key] = value
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return path
    return write


@pytest.fixture(scope="session")
def tiny_bert_store(tmp_path_factory, shared_data):
    """A bert-base-uncased store of Wikipedia sentences (one per line) for encoder tests."""
    from tinylm.data import prepare_store

    src = tmp_path_factory.mktemp("corpus") / "wiki.txt"
    lines = (shared_data / "corpora/wikipedia-sentences/wikipedia.csv").read_text().splitlines()[1:1500]
    src.write_text("\n".join(lines) + "\n")
    out = tmp_path_factory.mktemp("stores") / "wiki-bert"
    prepare_store([str(src)], "bert-base-uncased", out, val_fraction=0.1, seed=0, docs="line")
    return out


@pytest.fixture
def one_line_error(capsys):
    """Run the CLI and check the user-mistake contract: exit 2, one stderr line, no traceback."""
    def check(argv, *needles):
        from tinylm.cli.main import main

        code = main(argv)
        err = capsys.readouterr().err.strip()
        assert code == 2, err
        assert len(err.splitlines()) == 1 and "Traceback" not in err, err
        for needle in needles:
            assert needle in err, err
        return err
    return check


@pytest.fixture
def resumes_exactly(tmp_path):
    """Train `recipe` straight, and again stopped after `stop_at` steps then resumed; assert the final
    weights are bitwise equal. Returns the two run directories for further checks."""
    def check(recipe, stop_at: int):
        import torch
        from safetensors.torch import load_file

        from tinylm.runs.execute import execute
        from tinylm.train.checkpoint import latest_checkpoint

        straight, resumed = tmp_path / "straight", tmp_path / "resumed"
        execute(recipe, straight)

        def stop(run, record):
            if run.step == stop_at:
                run.stop_requested = True

        execute(recipe, resumed, on_step=stop)
        assert latest_checkpoint(resumed).name == f"step-{stop_at:08d}"
        execute(recipe, resumed, resume=True)
        a = load_file(str(latest_checkpoint(straight) / "model.safetensors"))
        b = load_file(str(latest_checkpoint(resumed) / "model.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        return straight, resumed
    return check
