"""tinylm's BLiMP and HellaSwag scores against the references themselves, item by item, on a small trained
model exported to a transformers directory: minicons' ``IncrementalLMScorer`` and lm-evaluation-harness's
``HFLM`` running lm-eval's own task definitions over the fixture files (offline: local JSON data sets).

The conventions each reference uses, and the tinylm setting that matches it:

* minicons ``sequence_score(..., bos_token=True)`` (the BabyLM pipeline's way): the tokenizer's BOS text
  before the sentence, no space between -> tinylm's default (start token, ``leading_space=False``);
* lm-eval >= 0.4 BLiMP (``doc_to_text: ""``, target delimiter " "): the start token (``prefix_token_id``:
  BOS, else EOS) as context and " " + sentence as continuation -> ``leading_space=True``
  (``--leading-space``). The two conventions give different numbers on purpose; both are checked;
* lm-eval HellaSwag (``process_docs``: ``ctx_b.capitalize()``, bracket cleanup, " " + ending) ->
  ``--hellaswag-format lm-eval`` (the default for JSONL).

The lm-eval tasks are run through ``simple_evaluate(log_samples=True)``, so the requests, the per-item
``acc``/``acc_norm`` and their aggregation are lm-eval's own. The same tasks then run through tinylm's
adapter (``tinylm eval --lm-eval``), which must reproduce ``HFLM`` request by request.
"""

import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

pytest.importorskip("transformers")
lm_eval = pytest.importorskip("lm_eval")
minicons = pytest.importorskip("minicons")

from tinylm.eval.hf_import import load_any, special_ids_for  # noqa: E402
from tinylm.eval.minimal_pairs import read_minimal_pairs, sentence_logprobs  # noqa: E402
from tinylm.eval.multiple_choice import _encode_pairs, read_hellaswag  # noqa: E402
from tinylm.eval.scoring import Scorer  # noqa: E402

TOL = 1e-4  # fp32 log-probabilities summed over a sentence
PAIRS_PER_PARADIGM = 8
LM_EVAL_TASKS = Path(lm_eval.__file__).parent / "tasks"
WIKIHOW_STYLE = [  # synthetic items in HellaSwag's WikiHow shape: the bracket artefacts preprocess removes
    {"activity_label": "Home and Garden", "ctx_a": "[header] How to water a plant [title] Check the soil. [step] Push "
     "a finger into the soil.", "ctx_b": "if it", "label": "0",
     "endings": ["feels dry, water it.  [substeps] Use a can.", "[title] is wet, wait. [step] Check again.",
                 "is cold, warm it with a Lamp.", "tastes sweet, eat it."]},
    {"activity_label": "Food and Entertaining", "ctx_a": "[header] How to boil an egg [title] Fill a pot with water.",
     "ctx_b": "", "label": "2",
     "endings": ["[step] Put the pot in the freezer.", "Paint the egg  blue.", "[step] Heat the water until it boils.",
                 "[title] Throw the pot away."]},
    {"activity_label": "Sports and Fitness", "ctx_a": "[header] How to stretch [title] Stand up straight.",
     "ctx_b": "then Slowly", "label": "1",
     "endings": ["sit on the Chair.", "reach down to touch your toes.", "[step] jump in the lake.",
                 "eat a sandwich [substeps] with Cheese."]},
]


# ------------------------------------------------------------------ fixtures: the model, the data, the tasks
@pytest.fixture(scope="module")
def model(trained_run, tmp_path_factory):
    """The session's tiny trained Llama (GPT-2 tokenizer: BOS = EOS = <|endoftext|>), and its export."""
    from tinylm.eval.export import export_hf

    loaded = load_any(trained_run)
    out = tmp_path_factory.mktemp("parity") / "hf"
    export_hf(loaded, out, verify=False)  # tests/eval/test_eval_hf.py checks the export's logits
    return loaded, out


@pytest.fixture(scope="module")
def data(fixtures, tmp_path_factory):
    """The first pairs of each fixture paradigm (both BLiMP sets), the HellaSwag JSONL, WikiHow-style items."""
    root = tmp_path_factory.mktemp("parity-data")
    for name in ("blimp", "blimp-filtered"):
        (root / name).mkdir()
        for src in sorted((fixtures / name).glob("*.jsonl")):
            lines = src.read_text().splitlines()[:PAIRS_PER_PARADIGM]
            (root / name / src.name).write_text("\n".join(lines) + "\n")
    shutil.copyfile(fixtures / "hellaswag" / "val-first10.jsonl", root / "hellaswag.jsonl")
    (root / "wikihow.jsonl").write_text("".join(json.dumps(item) + "\n" for item in WIKIHOW_STYLE))
    return root


@pytest.fixture(scope="module")
def tasks(data, tmp_path_factory):
    """lm-eval task YAMLs over the local files: lm-eval's own BLiMP template and HellaSwag task, data swapped."""
    folder = tmp_path_factory.mktemp("lm-eval-tasks")
    cache = tmp_path_factory.mktemp("datasets-cache")

    def local(split: str, files) -> str:
        listed = "".join(f"\n      - {f}" for f in files)
        return (f"dataset_path: json\ndataset_name: null\ndataset_kwargs:\n  cache_dir: {cache}\n  data_files:\n"
                f"    {split}:{listed}\n")

    for name in ("blimp", "blimp-filtered"):  # a task per paradigm, as lm-eval's blimp group (their fields differ)
        for file in sorted((data / name).glob("*.jsonl")):
            task = blimp_task(name, file.stem)
            (folder / f"{task}.yaml").write_text(f"include: {LM_EVAL_TASKS / 'blimp' / '_template_yaml'}\n"
                                                 f"task: {task}\n" + local("train", [file]))
    for name in ("hellaswag", "wikihow"):
        (folder / f"parity_{name}.yaml").write_text(
            f"include: {LM_EVAL_TASKS / 'hellaswag' / 'hellaswag.yaml'}\ntask: parity_{name}\ntraining_split: null\n"
            "validation_split: validation\n" + local("validation", [data / f"{name}.jsonl"]))
    (folder / "parity_rolling.yaml").write_text(  # perplexity of texts longer than the model's 512 positions
        "task: parity_rolling\noutput_type: loglikelihood_rolling\nvalidation_split: train\ndoc_to_text: ''\n"
        "doc_to_target: \"{{ (sentence_good + ' ') * 100 }}\"\nmetric_list:\n  - metric: word_perplexity\n"
        "  - metric: bits_per_byte\n" + local("train", [data / "blimp" / "npi_present_1.jsonl"]))
    (folder / "parity_generate.yaml").write_text(  # a generation task, which tinylm's adapter refuses
        "task: parity_generate\noutput_type: generate_until\nvalidation_split: train\n"
        "doc_to_text: '{{sentence_good}}'\n"
        "doc_to_target: '{{sentence_bad}}'\nmetric_list:\n  - metric: exact_match\n    aggregation: mean\n"
        "    higher_is_better: true\n" + local("train", [data / "blimp" / "adjunct_island.jsonl"]))
    return folder


PARADIGMS = ("adjunct_island", "anaphor_gender_agreement", "npi_present_1", "regular_plural_subject_verb_agreement_1",
             "tough_vs_raising_1")  # the fixture's


def blimp_task(name: str, paradigm: str) -> str:
    return f"parity_{name.replace('-', '_')}_{paradigm}"


PARITY_TASKS = [blimp_task(n, p) for n in ("blimp", "blimp-filtered") for p in PARADIGMS] + \
    ["parity_hellaswag", "parity_wikihow"]


def _evaluate(lm, tasks):
    from lm_eval.evaluator import simple_evaluate
    from lm_eval.tasks import TaskManager

    manager = TaskManager(include_path=str(tasks), include_defaults=False)
    return simple_evaluate(model=lm, tasks=PARITY_TASKS + ["parity_rolling"], task_manager=manager, log_samples=True)


@pytest.fixture(scope="module")
def reference(model, tasks):
    """lm-eval's HFLM on the export: its per-item log-likelihoods and metrics for every parity task."""
    from lm_eval.models.huggingface import HFLM

    hflm = HFLM(pretrained=str(model[1]), device="cpu", batch_size=16, dtype="float32")
    return _evaluate(hflm, tasks)


def _ordered(samples) -> list[dict]:
    return sorted(samples, key=lambda s: s["doc_id"])


def _lls(samples) -> np.ndarray:
    """(items, choices) log-likelihoods of lm-eval's per-item samples (as given: sort with ``_ordered``)."""
    return np.array([[float(r[0]) for r in s["filtered_resps"]] for s in samples])


def _greedy(samples) -> list[list[bool]]:
    return [[bool(r[1]) for r in s["filtered_resps"]] for s in _ordered(samples)]


def _scorer(model):
    loaded = model[0]
    return Scorer.for_model(loaded.model), loaded.tokenizer, special_ids_for(loaded)


# ------------------------------------------------------------------ BLiMP
@pytest.mark.parametrize("name", ["blimp", "blimp-filtered"])
def test_blimp_equals_minicons_with_bos_and_no_leading_space(model, data, name):
    """minicons' BabyLM convention (BOS text + sentence) is tinylm's default: summed log-probs within 1e-4."""
    from minicons import scorer as mc

    pairs = read_minimal_pairs(data / name)
    sentences = [p.good for p in pairs] + [p.bad for p in pairs]
    scorer, tok, specials = _scorer(model)
    ours, how = sentence_logprobs(scorer, tok, specials, sentences)
    assert how["start_token"] == "<|endoftext|>" and not how["leading_space"]
    ref = mc.IncrementalLMScorer(str(model[1]), "cpu")
    theirs = np.array([v for i in range(0, len(sentences), 32) for v in ref.sequence_score(
        sentences[i:i + 32], reduction=lambda x: x.sum(0).item(), bos_token=True)])
    assert np.abs(ours - theirs).max() <= TOL, np.abs(ours - theirs).max()
    half = len(pairs)
    assert ((ours[:half] >= ours[half:]) == (theirs[:half] >= theirs[half:])).all()


@pytest.mark.parametrize("name", ["blimp", "blimp-filtered"])
def test_blimp_equals_lm_eval_with_leading_space(model, data, reference, name):
    """lm-eval 0.4's BLiMP (start token, then " " + sentence) is tinylm's --leading-space, item by item; without
    it the numbers differ (the BabyLM convention above), so the flag is what makes the two comparable."""
    from tinylm.eval.minimal_pairs import evaluate_minimal_pairs

    samples = [s for p in PARADIGMS for s in _ordered(reference["samples"][blimp_task(name, p)])]
    theirs = _lls(samples)  # columns: good, bad
    pairs = read_minimal_pairs(data / name)
    assert [s["doc"]["sentence_good"] for s in samples] == [p.good for p in pairs]
    scorer, tok, specials = _scorer(model)
    sentences = [p.good for p in pairs] + [p.bad for p in pairs]
    ours = sentence_logprobs(scorer, tok, specials, sentences, leading_space=True)[0].reshape(2, -1).T
    assert np.abs(ours - theirs).max() <= TOL, np.abs(ours - theirs).max()
    without = sentence_logprobs(scorer, tok, specials, sentences)[0].reshape(2, -1).T
    assert np.abs(without - theirs).max() > 0.1  # the conventions really differ

    correct = [s["acc"] for s in samples]
    assert ((ours[:, 0] >= ours[:, 1]) == np.array(correct, dtype=bool)).all()
    result = evaluate_minimal_pairs(scorer, tok, specials, pairs, leading_space=True)
    assert {k: v["accuracy"] for k, v in result["paradigms"].items()} == \
        {p: pytest.approx(reference["results"][blimp_task(name, p)]["acc,none"]) for p in PARADIGMS}


# ------------------------------------------------------------------ HellaSwag
@pytest.mark.parametrize("task, file", [("parity_hellaswag", "hellaswag.jsonl"), ("parity_wikihow", "wikihow.jsonl")])
def test_hellaswag_equals_lm_eval_item_by_item(model, data, reference, task, file):
    """lm-eval's hellaswag task on the same JSONL: queries, log-likelihoods, acc and acc_norm per item."""
    from tinylm.eval.multiple_choice import evaluate_hellaswag

    samples = _ordered(reference["samples"][task])
    items, _ = read_hellaswag(data / file, "lm-eval")
    assert [it.query for it in items] == [s["doc"]["query"] for s in samples]
    assert [list(it.choices) for it in items] == [s["doc"]["choices"] for s in samples]
    scorer, tok, specials = _scorer(model)
    lls = scorer.causal(*_encode_pairs(tok, items))[0].reshape(len(items), -1)
    theirs = _lls(samples)
    assert np.abs(lls - theirs).max() <= TOL, np.abs(lls - theirs).max()
    chars = np.array([[len(c) for c in it.choices] for it in items])
    gold = np.array([it.gold for it in items])
    assert ((lls.argmax(1) == gold) == np.array([s["acc"] for s in samples])).all()
    assert (((lls / chars).argmax(1) == gold) == np.array([s["acc_norm"] for s in samples])).all()
    r = evaluate_hellaswag(scorer, tok, specials, items)
    assert (r["acc"], r["acc_norm"]) == (pytest.approx(reference["results"][task]["acc,none"]),
                                         pytest.approx(reference["results"][task]["acc_norm,none"]))


def test_hellaswag_text_format_rebuilds_lm_eval_queries(fixtures):
    """The text file has ctx_b as written ("... on a roof. he"); --hellaswag-format lm-eval capitalises it as
    lm-eval does, which gives exactly the queries lm-eval builds from the JSONL of the same items."""
    jsonl, _ = read_hellaswag(fixtures / "hellaswag" / "val-first10.jsonl")
    as_written, fmt = read_hellaswag(fixtures / "hellaswag" / "val-first30.txt")
    rebuilt, _ = read_hellaswag(fixtures / "hellaswag" / "val-first30.txt", "lm-eval")
    assert fmt == "text" and as_written[0].query.endswith("on a roof. he")
    assert [it.query for it in rebuilt[:10]] == [it.query for it in jsonl]
    llama_cpp, _ = read_hellaswag(fixtures / "hellaswag" / "val-first10.jsonl", "llama.cpp")
    assert [it.query for it in llama_cpp] == [it.query for it in as_written[:10]]


# ------------------------------------------------------------------ tinylm's lm-eval adapter
def test_tinylm_adapter_reproduces_hflm_request_by_request(model, tasks, reference):
    from tinylm.eval.lm_eval_model import TinylmLM

    scorer, tok, specials = _scorer(model)
    ours = _evaluate(TinylmLM(scorer, tok, specials), tasks)
    assert min(len(tok.encode((s["doc"]["sentence_good"] + " ") * 100).ids)
               for s in ours["samples"]["parity_rolling"]) > scorer.max_len  # two windows or more
    mine, theirs = ([float(np.ravel(s["filtered_resps"])[0]) for s in _ordered(r["samples"]["parity_rolling"])]
                    for r in (ours, reference))  # rolling windows: each text's summed log-likelihood
    assert np.abs(np.array(mine) - np.array(theirs)).max() <= 10 * TOL, np.abs(np.array(mine) - np.array(theirs)).max()
    for metric in ("word_perplexity,none", "bits_per_byte,none"):
        ours_value, theirs_value = (r["results"]["parity_rolling"][metric] for r in (ours, reference))
        assert ours_value == pytest.approx(theirs_value), metric
    for task in PARITY_TASKS:
        mine, theirs = _lls(_ordered(ours["samples"][task])), _lls(_ordered(reference["samples"][task]))
        assert np.abs(mine - theirs).max() <= TOL, (task, np.abs(mine - theirs).max())
        assert _greedy(ours["samples"][task]) == _greedy(reference["samples"][task]), task
        for metric, value in reference["results"][task].items():
            if metric != "alias":
                assert ours["results"][task][metric] == pytest.approx(value), (task, metric)


# ------------------------------------------------------------------ `tinylm eval --lm-eval`
def test_eval_lm_eval_writes_results_beside_tinylms_own(trained_run, tasks, reference, tmp_path, capfd, monkeypatch):
    from tinylm.cli.main import main

    run = shutil.copytree(trained_run, tmp_path / "run")
    task = blimp_task("blimp", "npi_present_1")
    monkeypatch.chdir(tmp_path)  # outside any git repository: lm-eval's `git describe` must not speak
    assert main(["eval", str(run), "--lm-eval", f"{task},parity_hellaswag", "--lm-eval-include", str(tasks),
                 "--json", "--quiet"]) == 0
    captured = capfd.readouterr()
    assert "fatal" not in captured.err, captured.err
    out = json.loads(captured.out)
    for name in (task, "parity_hellaswag"):
        written = json.loads((run / "eval" / f"lm-eval.{name}.json").read_text())
        assert written == out["results"][f"lm-eval.{name}"]
        for metric in ("acc", "acc_norm") if name == "parity_hellaswag" else ("acc",):
            assert written["metrics"][metric] == pytest.approx(reference["results"][name][f"{metric},none"])
    summary = json.loads((run / "summary.json").read_text())
    assert summary["lm_eval_parity_hellaswag_acc_norm"] == written["metrics"]["acc_norm"] and written["samples"] == 10
    assert out["results"][f"lm-eval.{task}"]["samples"] == PAIRS_PER_PARADIGM


def test_eval_lm_eval_on_an_ensemble(trained_run, tasks, tmp_path, capsys):
    """The adapter scores through tinylm's scorer, so a mean-logit ensemble runs lm-eval tasks too: here the
    mean of a run's checkpoints at steps 4 and 12 scores as tinylm's own --leading-space BLiMP does."""
    from tinylm.cli.main import main

    members = [str(trained_run / "checkpoints" / f"step-{s:08d}") for s in (4, 12)]
    task = blimp_task("blimp", "adjunct_island")
    assert main(["eval", "--ensemble", *members, "--lm-eval", task, "--lm-eval-include", str(tasks),
                 "--out", str(tmp_path / "out"), "--json", "--quiet"]) == 0
    lm = json.loads(capsys.readouterr().out)["results"][f"lm-eval.{task}"]["metrics"]["acc"]
    src = next(Path(y.read_text().split("- ")[-1].strip()) for y in tasks.glob(f"{task}.yaml"))
    assert main(["eval", "--ensemble", *members, "--blimp", str(src), "--leading-space", "--json", "--quiet"]) == 0
    assert lm == pytest.approx(json.loads(capsys.readouterr().out)["results"][src.stem]["mean"])


@pytest.mark.slow  # a name not in the include folder is looked up among lm-eval's ~14,000 task YAMLs: 15-30 s
def test_eval_lm_eval_unknown_task_is_one_line(trained_run, tasks, one_line_error):
    one_line_error(["eval", str(trained_run), "--lm-eval", "parity_hellaswg", "--lm-eval-include", str(tasks)],
                   "unknown lm-eval task 'parity_hellaswg'", "did you mean parity_hellaswag")


def test_eval_lm_eval_mistakes_are_one_line(trained_run, tasks, tmp_path, one_line_error):
    run = str(trained_run)
    one_line_error(["eval", run, "--lm-eval", "parity_hellaswag", "--lm-eval-include", str(tmp_path / "nowhere")],
                   "not a folder")
    one_line_error(["eval", run, "--lm-eval", "parity_hellaswag,", "--lm-eval-include", str(tasks)], "comma")
    one_line_error(["eval", run, "--lm-eval-include", str(tasks), "--blimp", "x"], "--lm-eval TASK")
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "t.yaml").write_text((tasks / "parity_hellaswag.yaml").read_text().replace(
        "hellaswag.jsonl", "absent.jsonl").replace("task: parity_hellaswag", "task: parity_broken"))
    one_line_error(["eval", run, "--lm-eval", "parity_broken", "--lm-eval-include", str(broken)],
                   "could not load task 'parity_broken'")
    one_line_error(["eval", run, "--lm-eval", "parity_generate", "--lm-eval-include", str(tasks), "--out",
                    str(tmp_path / "gen")], "generates text")
    assert not (tmp_path / "gen").exists() or not any((tmp_path / "gen").iterdir())


def test_the_adapter_refuses_what_lm_eval_cannot_score():
    """Checked when the model is loaded, before any task is scored."""
    from types import SimpleNamespace

    from tinylm.errors import UserError
    from tinylm.eval.lm_eval_model import TinylmLM

    with pytest.raises(UserError, match="bert-run is an encoder; lm-evaluation-harness tasks score causal"):
        TinylmLM(SimpleNamespace(kind="encoder"), None, {"eos": 0, "cls": 1}, name="bert-run")
    with pytest.raises(UserError, match="neither a BOS nor an EOS"):
        TinylmLM(SimpleNamespace(kind="decoder"), None, {"pad": 0}, name="odd")
