"""Shared fixtures. Tests read the small files in tests/fixtures/, the package's bundled corpus, or data
they make; only tests marked `shared_data` read the full real data in ../shared/data, and are skipped
where it is absent (a clone of the repository alone)."""

import csv
import gzip
import os
import random
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

# One OpenMP thread per test process (subprocesses inherit it; OMP_NUM_THREADS=N overrides). The tests'
# models are tiny: a second thread saved 8% of the quick suite's wall time on two quiet cores, and cost
# it 76% on two busy ones (4:18 against 7:35 with two other processes spinning), because every parallel
# op waits until both of its threads are scheduled.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config):
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")  # cgroup v2: "QUOTA PERIOD" or "max PERIOD"


def pytest_xdist_auto_num_workers(config):
    """`-n auto`: one test process per core this process may use. xdist's own count is psutil's, which
    sees the host's cores, not a container's CPU set or quota: a 2-core container on a 64-core host would
    start 64 processes of ~0.5 GB each. PYTEST_XDIST_AUTO_NUM_WORKERS still overrides."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS", "").isdigit():
        return int(os.environ["PYTEST_XDIST_AUTO_NUM_WORKERS"])
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, int(quota) // int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cores)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"
NO_SHARED_DATA = f"needs the full real data in {SHARED_DATA}, which is absent"
UNMARKED_KEY = pytest.StashKey[bool]()
UNMARKED = ("requests the shared_data fixture without @pytest.mark.shared_data: mark it (it is then skipped "
            "where ../shared/data is absent) or give it a small file from tests/fixtures/")


def pytest_collection_modifyitems(config, items):
    """Skip `shared_data` tests where the folder is absent; a test that reads it unmarked errors at setup."""
    present = SHARED_DATA.is_dir()
    for item in items:
        marked = item.get_closest_marker("shared_data") is not None
        if "shared_data" in getattr(item, "fixturenames", ()) and not marked:
            item.stash[UNMARKED_KEY] = True
        elif marked and not present:
            item.add_marker(pytest.mark.skip(reason=NO_SHARED_DATA))


# An unmarked test that reads ../shared by a path of its own (not the fixture) fails too: an audit hook sees
# every file this process opens or lists while such a test runs (its subprocesses are not seen). This is
# what lets CI run the suite beside ../shared only once: where it is absent, only marked tests can differ.
SHARED_ROOTS = tuple({str(REPO.parent / "shared"), os.path.realpath(REPO.parent / "shared")})
_unmarked = {"test": None, "read": []}  # the unmarked test running now, and what it read under ../shared


def _see_shared_reads(event, args):
    if _unmarked["test"] is None or event not in ("open", "os.listdir", "os.scandir") or not args:
        return
    try:  # an audit hook must never raise: it would break the call it watches
        if args[0] is None or isinstance(args[0], int):
            return
        path = os.path.normpath(os.path.join(os.getcwd(), os.fsdecode(args[0])))
        if any(path == root or path.startswith(root + os.sep) for root in SHARED_ROOTS):
            _unmarked["read"].append(path)
    except Exception:
        pass


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item):
    if item.stash.get(UNMARKED_KEY, False):
        pytest.fail(f"{item.nodeid} {UNMARKED}", pytrace=False)
    if not _unmarked.get("hooked"):
        sys.addaudithook(_see_shared_reads)
        _unmarked["hooked"] = True
    marked = item.get_closest_marker("shared_data") is not None
    _unmarked.update(test=None if marked else item.nodeid, read=[])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item):
    result = yield
    if _unmarked["test"] == item.nodeid and _unmarked["read"]:
        pytest.fail(f"{item.nodeid} read {_unmarked['read'][0]} without @pytest.mark.shared_data: mark it (it is then "
                    "skipped where ../shared is absent) or give it a small file from tests/fixtures/", pytrace=False)
    return result


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The full real data beside the repository; only for tests marked `shared_data`."""
    if not SHARED_DATA.is_dir():
        pytest.skip(NO_SHARED_DATA)
    return SHARED_DATA


@pytest.fixture(scope="session")
def fixtures() -> Path:
    """tests/fixtures/: small slices of public data, each with its license (see its README.md)."""
    return FIXTURES


def bundled_book(name: str) -> str:
    """A Gutenberg book shipped with the package (src/tinylm/assets/corpus/NAME.txt.gz), as text."""
    from tinylm.package_files import package_file

    return gzip.decompress(package_file("assets", "corpus", f"{name}.txt.gz").read_bytes()).decode("utf-8")


@pytest.fixture(scope="session")
def book():
    """`book("AliceInWonderland")` -> the text of a book of the bundled corpus (builtin:children)."""
    return bundled_book


AGNEWS_TOPICS = {  # class number -> words of its topic; AG News's classes are World, Sports, Business, Sci/Tech
    1: "government minister election embassy president troops parliament ceasefire rebels diplomats".split(),
    2: "coach season playoff quarterback olympics tournament striker champions inning medal".split(),
    3: "shares profit nasdaq investors quarterly merger earnings economy stocks retailer".split(),
    4: "software internet microsoft wireless processor researchers browser satellite linux spam".split(),
}
COMMON_WORDS = "the a of in on and to said after new with for by as at from has was".split()


def write_agnews_csv(path, per_label: int = 40, seed: int = 0) -> list[tuple[int, str, str]]:
    """A synthetic file in AG News's format (no header, `"class","title","description"`, every field quoted,
    classes 1-4, `\\` in some descriptions as in the real file), `per_label` rows per class, seeded order.
    Returns the rows written. (The real AG News is for research only, so it is not committed here.)"""
    rng = random.Random(seed)
    rows = []
    for label, topic in AGNEWS_TOPICS.items():
        for i in range(per_label):
            title = " ".join(rng.choice(topic).capitalize() for _ in range(3))
            words = [rng.choice(topic if rng.random() < 0.4 else COMMON_WORDS) for _ in range(14)]
            words[5] += ","
            if i % 5 == 0:
                words.insert(8, "\\$%d million" % (i + 1))
            rows.append((label, title, " ".join(words).capitalize() + "."))
    rng.shuffle(rows)
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, quoting=csv.QUOTE_ALL, lineterminator="\n").writerows(rows)
    return rows


@pytest.fixture(scope="session")
def make_agnews_csv():
    """`make_agnews_csv(path, per_label=40, seed=0)`: write_agnews_csv, for tests that need their own file."""
    return write_agnews_csv


@pytest.fixture(scope="session")
def agnews_csv(tmp_path_factory) -> Path:
    """A synthetic AG News-format file: 40 rows of each of the 4 classes."""
    path = tmp_path_factory.mktemp("agnews") / "agnews.csv"
    write_agnews_csv(path)
    return path


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
                                   "train": {"batch_size": 4, "duration": steps, "lr": 1e-2, "precision": "fp32", **train}})
        torch.manual_seed(0)
        cfg = resolve_model_config(model, flavour=flavour, vocab_size=97, max_seq_len=64)
        val = [SyntheticBatches(seed=99).next_batch()]
        return Run(recipe, build_model(cfg), SyntheticBatches(), val, torch.device("cpu"), steps, list(methods),
                   out_dir=out_dir)
    return build


@pytest.fixture
def masked_lm_batch():
    """A tiny BERT, a batch with about 15% of its positions labelled (`masked`), and `head_rows`: how many
    positions its MLM head ran at, per call (`Encoder.forward(at=)` runs it at the labelled ones only)."""
    import torch

    from tinylm.models import build_model, resolve_model_config
    torch.manual_seed(0)
    model = build_model(resolve_model_config("L2-2-32x2", flavour="bert", vocab_size=500, max_seq_len=32))
    ids = torch.randint(5, 500, (3, 24))
    masked = torch.rand(ids.shape) < 0.15
    labels = torch.where(masked, ids, torch.full_like(ids, -100))
    rows = []
    model.mlm_transform.register_forward_hook(lambda m, args, out: rows.append(args[0].numel() // args[0].shape[-1]))
    return SimpleNamespace(model=model, ids=ids, labels=labels, masked=masked, head_rows=rows)


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory):
    """A GPT-2 token store of the first 120,000 characters of the bundled Alice in Wonderland (prepared once
    per session)."""
    from tinylm.data import prepare_store

    src = tmp_path_factory.mktemp("corpus") / "alice.txt"
    src.write_text(bundled_book("AliceInWonderland")[:120_000])
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
                "train": {"duration": "40 steps", "batch_size": 4, "lr": 3e-3, "log_every": 5,
                          "precision": "fp32"},  # the same numbers on every CPU; bf16 tests ask for it
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
def tiny_bert_store(tmp_path_factory):
    """A bert-base-uncased store of the paragraphs of the bundled Peter Pan's first 150,000 characters, for
    encoder tests."""
    from tinylm.data import prepare_store

    src = tmp_path_factory.mktemp("corpus") / "peter.txt"
    src.write_text(bundled_book("PeterPan")[:150_000])
    out = tmp_path_factory.mktemp("stores") / "peter-bert"
    prepare_store([str(src)], "bert-base-uncased", out, val_fraction=0.1, seed=0, docs="paragraph")
    return out


@pytest.fixture(scope="session")
def pretrain_tiny_encoder(tiny_bert_store):
    """`pretrain(out, name=..., model=..., steps=..., log_every=..., windows=...)`: an MLM encoder trained a few
    steps on `tiny_bert_store` into `out` (weights to fine-tune, not a good model)."""
    def pretrain(out, *, name: str, model: str, steps: int, log_every: int, windows: int):
        from tinylm.runs.execute import execute
        from tinylm.train.recipe import recipe_from_dict

        execute(recipe_from_dict({
            "name": name, "data": {"store": str(tiny_bert_store), "sampler": "mlm", "seq_len": 32},
            "model": {"name": model, "flavour": "bert", "max_seq_len": 32},
            "train": {"duration": steps, "batch_size": 8, "lr": 5e-3, "log_every": log_every},
            "eval": {"every": 0, "windows": windows, "batch_size": 8}, "checkpoint": {"every": 0}}), out)
        return out
    return pretrain


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
        from tinylm.rundir.checkpoints import latest_checkpoint

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


class Unpickled(BaseException):
    """Raised by the `no_unpickling` guard; a BaseException, so no `except Exception` can swallow it."""


@pytest.fixture
def no_unpickling(monkeypatch):
    """Fail the test if `torch.load` or `pickle.load` is reached: tinylm never unpickles (issue 16, class 2).
    Each call is also recorded and checked at teardown, in case something swallowed the exception."""
    import pickle

    import torch

    calls = []

    def forbidden(name):
        def guard(*args, **kwargs):
            calls.append(name)
            raise Unpickled(f"{name} was called: tinylm must never unpickle")
        return guard

    monkeypatch.setattr(torch, "load", forbidden("torch.load"))
    monkeypatch.setattr(torch.serialization, "load", forbidden("torch.serialization.load"))
    monkeypatch.setattr(pickle, "load", forbidden("pickle.load"))
    yield calls
    assert not calls, f"unpickled: {calls}"


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory, tiny_store):
    """A tiny finished run (12 steps; checkpoints at 4, 8 and 12, all kept), trained once per session.
    Copy it before changing it: `shutil.copytree(trained_run, tmp_path / "run")`."""
    import yaml

    from tinylm.runs.execute import execute
    from tinylm.train.recipe import load_recipe

    root = tmp_path_factory.mktemp("trained")
    recipe = root / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({
        "name": "tiny", "data": {"store": str(tiny_store), "seq_len": 16, "sampler": "windows"},
        "model": {"name": "L1-2-16x2", "flavour": "llama"},
        "train": {"duration": "12 steps", "batch_size": 2, "lr": 3e-3, "log_every": 2, "precision": "fp32"},
        "eval": {"every": 6, "windows": 2, "batch_size": 2}, "checkpoint": {"every": 4, "keep": 3}}))
    execute(load_recipe(str(recipe)), root / "run")
    return root / "run"


@pytest.fixture(scope="session")
def words_runs(tmp_path_factory, tiny_store):
    """A tiny run with checkpoints at 100 and 600 words seen (`checkpoint.words`, keep 1), trained once
    straight and once stopped at step 8 then resumed: `(recipe, straight, resumed)`, trained once per session."""
    from tinylm.runs.execute import execute
    from tinylm.train.recipe import recipe_from_dict

    recipe = recipe_from_dict({
        "name": "words", "data": {"store": str(tiny_store), "seq_len": 16, "sampler": "windows"},
        "model": {"name": "L1-2-16x2", "flavour": "llama"},
        "train": {"duration": "16 steps", "batch_size": 4, "lr": 3e-3, "log_every": 1, "precision": "fp32"},
        "eval": {"every": 0, "windows": 2, "batch_size": 2},
        "checkpoint": {"every": 0, "keep": 1, "words": ["100", "600"]}})
    root = tmp_path_factory.mktemp("words-runs")
    execute(recipe, root / "straight")

    def stop(run, record):
        if run.step == 8:
            run.stop_requested = True

    execute(recipe, root / "resumed", on_step=stop)
    execute(recipe, root / "resumed", resume=True)
    return recipe, root / "straight", root / "resumed"
