"""`tinylm report`: the page tells the run's story from what the run wrote, and a mistake writes nothing.

Run directories are written by hand here (config.yaml, metrics.jsonl with every kind of event,
summary.json, eval results, finetune.json), so each test knows exactly what the page must show; one
test reports a real tiny run (the session's `trained_run`). The last tests open pages in headless
Chromium (skipped where it is absent) and fail on any JavaScript or console error or broken image.
"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
import yaml

from tinylm.cli.main import main

HERE = Path(__file__).resolve().parent
_spec = importlib.util.spec_from_file_location("report_browser", HERE / "report_browser.py")
report_browser = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(report_browser)

EVENTS = [  # (step, record): what the methods log, mechanics included
    (0, {"event": "restart_schedule", "length": 10}),
    (10, {"event": "episode_end", "episode": 1, "val_loss": 5.0, "best": 5.0, "sleep": "light"}),
    (10, {"event": "reset_optimizer", "params": 8, "all": True}),
    (20, {"event": "episode_end", "episode": 2, "val_loss": 4.8, "best": 4.8, "sleep": "deep"}),
    (20, {"event": "rebuild_model"}),
    (24, {"event": "rollback", "tag": "sleep-best"}),
    (26, {"event": "reinit", "params": ["embed.weight"]}),
    (28, {"event": "grow_phase", "stage": 2, "phase": "phase1", "layers": 2, "new": [1, 2], "until": 30}),
    (30, {"event": "brand_new_method_event", "x": 1}),
    (40, {"event": "episode_end", "episode": 4, "val_loss": 4.1, "best": 4.1, "sleep": "light"}),
]


def lm_eval_result(task: str, acc: float, stderr: float | None) -> dict:
    """RUN/eval/lm-eval.<task>.json as tinylm/eval/harness.py `run` writes it (a filtered metric included)."""
    metrics = {"acc": acc, **({"acc_stderr": stderr} if stderr is not None else {}), "acc,flex": acc / 2,
               "acc_stderr,flex": "N/A"}
    return {"task": task, "kind": "task", "metrics": metrics, "samples": 20, "version": 1.0,
            "higher_is_better": {"acc": True}, "limit": 20, "include": None, "lm_eval_version": "0.4.9",
            "scoring": {"model": "tinylm", "start_token_id": 1, "precision": "fp32"}}


def make_run(path: Path, lr: float = 1e-3, steps: int = 40, loss0: float = 6.0, methods=None, evals: bool = True,
             events=EVENTS, flops_per_step: float = 1e9, words_per_token: float | None = None,
             lm_eval: dict | None = None) -> Path:
    """A run directory as `tinylm train` (and `tinylm eval`) leave it, written by hand; `words_per_token`
    makes it log `words` (tinylm/data/words_seen.py) beside tokens, `lm_eval` {task: (acc, stderr)} leaves
    lm-eval results."""
    path.mkdir(parents=True)

    def words(step):
        return {} if words_per_token is None else {"words": round(step * 32 * words_per_token)}

    config = {"name": path.name, "data": {"seq_len": 16, "sampler": "windows"},
              "model": {"name": "L2-2-16x2", "flavour": "llama"},
              "train": {"duration": f"{steps} steps", "lr": lr, "batch_size": 2},
              "methods": methods if methods is not None else [{"sleep": {"episode": "10 steps", "policy": "paper"}}]}
    (path / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    lines = []
    for step in range(2, steps + 1, 2):
        for at, record in events:
            if step - 2 < at <= step and at <= steps:
                lines.append({**record, "step": at, "tokens": at * 32, **words(at), "flops": at * flops_per_step})
        line = {"step": step, "tokens": step * 32, **words(step), "flops": step * flops_per_step,
                "loss": loss0 - 0.05 * step, "tokens_per_s": 1000.0 + step, "flops_per_s": 3e10}
        if step % 10 == 0:
            line["val_loss"] = loss0 - 0.04 * step
        if evals:  # the run with everything also logs distillation's two terms
            line.update(distill_ce=line["loss"] + 0.25, distill_kl=0.5 / step)
        lines.append(line)
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))
    (path / "summary.json").write_text(json.dumps({
        "name": path.name, "complete": True, "steps": steps, "total_steps": steps, "tokens": steps * 32,
        "flops": steps * flops_per_step, "parameters": 1234, "val_loss": loss0 - 0.04 * steps, "device": "cpu",
        "precision": "fp32", "processes": 1, "wall_s": 3.5, "samples": [{"prompt": "Alice was", "text": " <here>"}]}))
    if evals:
        (path / "eval").mkdir()
        (path / "eval" / "blimp.json").write_text(json.dumps({
            "mean": 0.6125, "pairs": 40, "paradigm_count": 4, "paradigms": {},
            "fields": {"morphology": {"accuracy": 0.7125, "pairs": 20, "paradigms": 2},
                       "syntax": {"accuracy": 0.5125, "pairs": 20, "paradigms": 2}}}))
        (path / "eval" / "hellaswag.json").write_text(json.dumps({"acc": 0.3125, "acc_norm": 0.3375, "acc_stderr": 0.05,
                                                                     "items": 16}))
        (path / "finetune.json").write_text(json.dumps({
            "task": {"name": "agnews"}, "baseline": {"accuracy": 0.25},
            "pretrained": {"n": 2, "mean": 0.8125, "std": 0.0125}, "scratch": {"n": 2, "mean": 0.5, "std": 0.02},
            "gap": 0.3125}))
    for task, (acc, stderr) in (lm_eval or {}).items():
        (path / "eval").mkdir(exist_ok=True)
        (path / "eval" / f"lm-eval.{task}.json").write_text(json.dumps(lm_eval_result(task, acc, stderr)))
    return path


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("report-runs")
    make_run(root / "sleepy", words_per_token=0.75, lm_eval={"blimp_local": (0.625, 0.0433), "arc_local": (0.3, None)})
    make_run(root / "faster", lr=3e-3, loss0=5.5, evals=False, methods=[], events=(),
             flops_per_step=2e9)
    for seed, loss0 in enumerate((6.0, 6.2, 5.9)):
        make_run(root / "study" / f"seed{seed}", loss0=loss0, evals=False,
                 lm_eval={"blimp_local": (0.55, 0.05)} if seed == 0 else None)
    return root


def report(tmp_path, *paths, name="report.html") -> str:
    out = tmp_path / name
    assert main(["report", *map(str, paths), "--out", str(out)]) == 0
    return out.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def pages(runs, tmp_path_factory) -> dict[str, Path]:
    """Each page drawn once for the module: one run with everything, one with nothing, a comparison of
    a run, another run and a seed study."""
    out = tmp_path_factory.mktemp("report-pages")
    named = {"one": [runs / "sleepy"], "bare": [runs / "faster"],
             "compare": [runs / "sleepy", runs / "faster", runs / "study"]}
    for name, paths in named.items():
        assert main(["report", *map(str, paths), "--out", str(out / f"{name}.html")]) == 0
    return {name: out / f"{name}.html" for name in named}


def page_of(pages, name: str) -> str:
    return pages[name].read_text(encoding="utf-8")


def text_of(page: str) -> str:
    """The page's words, tags dropped (table cells become words)."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))


# ------------------------------------------------------------------------------------ one run
def test_one_run_shows_recipe_curves_events_results_and_sample(pages):
    page = page_of(pages, "one")
    words = text_of(page)
    assert "policy: paper" in words and "lr: 0.001" in words  # the resolved recipe, whole
    images = re.findall(r'<img alt="([^"]+)" src="data:image/png;base64,', page)
    assert images[:3] == ["loss against steps", "loss against tokens", "loss against FLOPs"]
    # every decision marked once; the mechanics (reset_optimizer, rebuild_model, restart_schedule) are not
    table = page[page.index("the marked events"):page.index("every event line")]
    marked = re.findall(r"<tr><td>sleepy</td><td class=\"num\">(\d+)</td><td>([^<]+)</td>", table)
    assert marked == [("10", "light sleep (optimizer reset)"), ("20", "deep sleep (model rebuilt)"),
                      ("24", "rollback to the best snapshot"), ("26", "forget: weights re-drawn"),
                      ("28", "grow: new stage (older layers frozen)"), ("30", "other event"),
                      ("40", "episode ends with the run")]
    for shown in ("blimp: mean over paradigms 0.6125 (n=40)", "blimp: morphology 0.7125 (n=20)",
                  "blimp: syntax 0.5125 (n=20)", "hellaswag: acc 0.3125 ± 0.0500 (n=16)", "hellaswag: acc_norm 0.3375 (n=16)",
                  "agnews 0.8125 ± 0.0125 (n=2) 0.5000 ± 0.0200 (n=2) 0.3125 0.2500", "Alice was &lt;here&gt;",
                  "sleepy at step 40: cross-entropy on the data 4.2500, KL to the teachers 0.0125"):
        assert shown in words, shown
    assert "Seeds" not in words and "At equal compute" not in words  # only for studies, only for several runs


def test_lm_eval_results_are_a_table_with_their_stderr(pages):
    page = page_of(pages, "one")
    table = text_of(page[page.index("<h3>lm-evaluation-harness"):])
    # task, metric, value, stderr (none for arc_local, none for the filtered metric's "N/A"), items
    for shown in ("task metric value stderr items", "arc_local acc 0.3000 - 20", "arc_local acc,flex 0.1500 - 20",
                  "blimp_local acc 0.6250 0.0433 20", "blimp_local acc,flex 0.3125 - 20"):
        assert shown in table, shown
    assert "acc_stderr" not in table  # a stderr is a column, not a metric of its own


def test_lm_eval_results_side_by_side(pages):
    page = page_of(pages, "compare")
    table = text_of(page[page.index("<h3>lm-evaluation-harness"):page.index("RUN/eval/lm-eval.")])
    assert "task metric sleepy faster study/seed0 study/seed1 study/seed2" in table
    assert "blimp_local acc 0.6250 ± 0.0433 (n=20) - 0.5500 ± 0.0500 (n=20) - -" in table
    assert "arc_local acc 0.3000 (n=20) - - - -" in table


def test_words_axis_only_where_every_run_counts_words(pages):
    one, compare = page_of(pages, "one"), page_of(pages, "compare")
    assert re.findall(r'<input type="radio" name="axis" value="(\w+)"', one) == ["step", "tokens", "flops", "words"]
    assert 'alt="loss against words"' in one
    # faster and the seed study log no words: no words axis (they would be missing from it)
    assert re.findall(r'<input type="radio" name="axis" value="(\w+)"', compare) == ["step", "tokens", "flops"]
    assert 'alt="loss against words"' not in compare
    # the overview's words: summary.json has none, so the last logged (40 steps * 32 tokens * 0.75)
    overview = text_of(one[one.index("At a glance"):one.index("Throughput")])
    assert "tokens words FLOPs" in overview and "1,280 960 4e+10" in overview
    assert "1,280 - 8e+10" in text_of(compare[compare.index("At a glance"):compare.index("Throughput")])


def test_events_are_placed_on_the_words_axis():
    from tinylm.report.events import marks

    found = marks([{"event": "reinit", "step": 4, "tokens": 128, "words": 96, "flops": 1.0}], {}, total_steps=9)
    assert [(m["kind"], m["words"]) for m in found] == [("reinit", 96)]


def test_a_distilled_run_is_marked_where_it_begins():
    from tinylm.report.events import marks

    config = {"methods": [{"sleep": {}}, {"distill": {"teachers": ["runs/t1", "runs/t2"], "alpha": 0.5}}]}
    found = marks([{"event": "end", "step": 9}], config, total_steps=9)
    assert [(m["kind"], m["step"], m["record"].get("teachers")) for m in found] == [
        ("distill", 0, ["runs/t1", "runs/t2"])]  # and `end` is bookkeeping, not marked
    assert marks([], {"methods": [{"sleep": {}}]}, total_steps=9) == []


def test_the_page_needs_no_network(pages):
    page = page_of(pages, "compare")
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", page), "the page loads something from the network"
    assert "@import" not in page and "url(" not in page


def test_a_run_without_results_has_no_result_sections(pages):
    page = page_of(pages, "bare")
    assert "<h2>Evaluation" not in page and "<h2>Fine-tuning" not in page
    words = text_of(page)
    assert "Generated text faster Alice was &lt;here&gt; prompt &#x27;Alice was&#x27;" in words
    assert "No method event was logged." in words


# ------------------------------------------------------------------------------------ comparisons
def test_comparison_shows_only_the_keys_that_differ_and_equal_compute(pages):
    page = page_of(pages, "compare")
    diff = page[page.index("Recipes: what differs"):page.index("the whole recipe")]
    keys = re.findall(r"<tr><td>([a-z_.0-9]+)</td>", diff)
    assert keys == ["name", "train.lr", "methods.0.sleep.episode", "methods.0.sleep.policy"]
    assert "<td>(not set)</td>" in diff  # faster has no sleep
    words = text_of(page)
    assert "At equal compute" in words
    # faster spends 2e9 FLOPs a step, sleepy 1e9: sleepy's 4e10 FLOPs are faster's step 20, where its
    # validation loss is 5.5 - 0.04 * 20
    assert "faster 40 8e+10 20.0 4.7000" in words, words[words.index("At equal compute"):][:400]
    assert "study/seed1 40 4e+10 40.0 4.6000" in words


def test_seed_study_is_a_spread(pages):
    page = page_of(pages, "compare")
    # final val losses 4.4, 4.6, 4.3: mean 4.4333, sample std 0.1528
    assert "study: final validation loss 4.4333 ± 0.1528 (mean ± sample std, n=3)" in text_of(page)
    assert 'alt="validation loss over seeds"' in page


def test_a_run_stopped_before_its_first_log_line(tmp_path):
    run = tmp_path / "early"
    run.mkdir()
    (run / "config.yaml").write_text("name: early\n")
    (run / "metrics.jsonl").write_text("")
    words = text_of(report(tmp_path, run))
    assert "No loss logged yet" in words and "(no summary.json)" in words


def test_a_real_run(trained_run, tmp_path):
    from tinylm.rundir.files import read_json

    words = text_of(report(tmp_path, trained_run))
    assert f"{read_json(trained_run / 'summary.json', '')['val_loss']:.4f}" in words
    assert "L1-2-16x2" in words


def test_a_glob_leaves_out_what_is_not_a_run(runs, tmp_path, capsys):
    """`tinylm report runs/*` as `tinylm compare runs/*`: a plot and an ensemble's eval output beside the
    runs are left out with a note each, the runs reported (here a seed study alone, whose seeds are not
    compared at equal compute: they spend the same FLOPs a step)."""
    plot = tmp_path / "curves.png"
    plot.write_bytes(b"\x89PNG\r\n\x1a\n")
    ensemble = tmp_path / "t12-eval"
    (ensemble / "eval").mkdir(parents=True)
    (ensemble / "eval" / "blimp.json").write_text("{}")
    out = tmp_path / "report.html"
    assert main(["report", str(plot), str(runs / "study"), str(ensemble), "--out", str(out)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert [line.split(":")[0] for line in err] == ["tinylm report"] * 2
    assert f"left out {plot}" in err[0] and f"left out {ensemble}" in err[1]
    words = text_of(out.read_text(encoding="utf-8"))
    assert "tinylm report: study " in words and "study: final validation loss" in words
    assert "At equal compute" not in words


@pytest.mark.parametrize("case", ["none-is-a-run", "one-missing"])
def test_a_glob_of_no_run_or_a_missing_path_is_still_a_mistake(runs, tmp_path, capsys, case):
    if case == "none-is-a-run":
        (tmp_path / "plain").mkdir()
        (tmp_path / "notes.txt").write_text("x")
        paths = [tmp_path / "plain", tmp_path / "notes.txt"]
    else:  # a path that does not exist is a typo, not what a glob matched
        paths = [runs / "faster", tmp_path / "typo"]
    before = sorted(tmp_path.rglob("*"))
    assert main(["report", *map(str, paths), "--out", str(tmp_path / "report.html")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and ("none of" in err if case == "none-is-a-run" else "does not exist" in err)
    assert sorted(tmp_path.rglob("*")) == before


# ------------------------------------------------------------------------------------ mistakes
@pytest.mark.parametrize("case", ["not-a-run", "missing", "out-dir-missing", "out-is-dir", "corrupt-metrics"])
def test_a_mistake_is_one_line_and_writes_nothing(runs, tmp_path, capsys, case):
    run, out = runs / "sleepy", tmp_path / "report.html"
    if case == "not-a-run":
        run = tmp_path / "plain"
        run.mkdir()
        (run / "notes.txt").write_text("hello")
    elif case == "missing":
        run = tmp_path / "nowhere"
    elif case == "out-dir-missing":
        out = tmp_path / "no" / "such" / "report.html"
    elif case == "out-is-dir":
        out = tmp_path / "adir"
        out.mkdir()
    else:
        run = make_run(tmp_path / "torn")
        lines = (run / "metrics.jsonl").read_text().splitlines()
        lines[3] = lines[3][:20]
        (run / "metrics.jsonl").write_text("\n".join(lines) + "\n")
    before = sorted(tmp_path.rglob("*"))
    assert main(["report", str(run), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("tinylm report: error: ") and "Traceback" not in err
    assert sorted(tmp_path.rglob("*")) == before  # no page, no temporary file, no directory


# ------------------------------------------------------------------------------------ a real browser
needs_chromium = pytest.mark.skipif(report_browser.CHROMIUM is None, reason="no Chromium (/usr/bin/chromium) to "
                                    "open the page in; apt-get install chromium")


@pytest.fixture(scope="module")
def browser():
    chromium = report_browser.Chromium()
    yield chromium
    chromium.close()


@needs_chromium
def test_the_page_opens_in_chromium_without_errors(pages, tmp_path, browser):
    page = pages["compare"]
    # the axis selector works: choosing FLOPs shows that picture alone
    chosen = ("(() => { document.querySelector('input[value=flops]').click(); return Array.from("
              "document.querySelectorAll('.curve')).filter(c => !c.hidden).map(c => c.dataset.axis); })()")
    result = report_browser.check_page(browser, page, tmp_path / "report.png", script=chosen)
    assert result["problems"] == [] and result["broken_images"] == []
    assert result["value"] == ["flops"]
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_chromium
def test_the_browser_check_catches_errors(tmp_path, browser):
    bad = tmp_path / "bad.html"
    bad.write_text('<html><body><img alt="torn" src="data:image/png;base64,iVBORw0KGgo=">'
                   "<script>console.error('said so'); undefinedFunction();</script></body></html>")
    result = report_browser.check_page(browser, bad)
    assert result["broken_images"] == ["torn"]
    assert any("said so" in p for p in result["problems"])
    assert any("undefinedFunction" in p for p in result["problems"])
