"""The model card (`README.md`) of a BabyLM export: what was trained, on what, for how long, how it scores,
and whose method it is, so a hub repository of the revisions explains itself.

Words are BabyLM's count (whitespace words of the training text read, repeats included:
`tinylm.data.words_seen`); FLOPs are tinylm's (`tinylm.compute`, training only). Evaluation results
are the run's own `eval/*.json` (`tinylm eval RUN ...`), headline numbers only.
"""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from tinylm.rundir.files import read_json, read_yaml

# The papers behind each method of a recipe (`methods:`), as their method cards cite them.
CITATIONS = {
    "sleep": 'Rui Yamamoto and Keiji Miura. "FORGETTER with forgetful hyperparameters and recurring sleeps can '
             'continue to learn beyond normal overfitting limits." BabyLM Challenge 2025.',
    "forget": 'Yihong Chen et al. "Improving Language Plasticity via Pretraining with Active Forgetting." NeurIPS '
              '2023; Linus Folkerts et al. "GAFF: GPT-NeoX Active Forgetting Functionality."',
    "distill": 'Jean-Loup Tastet and Inar Timiryasov. "BabyLlama-2: Ensemble-Distilled Models Consistently '
               'Outperform Teachers With Limited Data." BabyLM Challenge 2024; Inar Timiryasov and Jean-Loup '
               'Tastet. "Baby Llama: knowledge distillation from an ensemble of teachers trained on a small '
               'dataset with no performance penalty." BabyLM Challenge 2023.',
    "grow": 'Miles Q. Li, Benjamin C. M. Fung and Shih-Chia Huang. "On the Effectiveness of Incremental Training '
            'of Large Language Models." 2024.',
}
HEADLINES = ("mean", "pair_accuracy", "acc", "acc_norm", "val_loss", "val_ppl")


def model_card(run_dir: Path, revisions, repo_name: str, predictions: dict) -> str:
    recipe = read_yaml(run_dir / "config.yaml", "it is the run's resolved recipe: restore it")
    summary = _maybe_json(run_dir / "summary.json")
    final = revisions[-1]
    methods = [next(iter(m)) if isinstance(m, dict) else str(m) for m in recipe.get("methods") or []]
    data = recipe.get("data", {})
    lines = ["---", "library_name: transformers", "tags: [babylm, tinylm]", "---", "",
             f"# {recipe.get('name', run_dir.name)}", "",
             f"{recipe.get('description') or 'A language model'} trained with tinylm "
             f"({', '.join(methods) or 'plain training'}), exported for the BabyLM 2025 evaluation pipeline.", "",
             "## Training", "",
             f"- model: `{recipe.get('model', {}).get('name')}`"
             + (f", {summary['parameters']:,} parameters" if "parameters" in summary else ""),
             f"- data: token store `{data.get('store') or data.get('sources')}`, tokenizer `{data.get('tokenizer')}`, "
             f"sampler `{data.get('sampler')}`, {data.get('seq_len')} tokens per sequence{_train_split(data)}",
             f"- trained: {final.step:,} steps, {_words(final.words)} words seen (BabyLM's count: whitespace words "
             f"of the text read, repeats included), {final.tokens:,} tokens, {final.flops:.3g} FLOPs",
             "", "## Revisions", "",
             "Each folder (or hub branch) is a checkpoint `AutoModelForCausalLM` / `AutoModelForMaskedLM` loads with "
             "its tokenizer; `chck_NM` is the first step at which N million words had been seen.", "",
             "| revision | step | words seen | tokens | FLOPs |", "| --- | ---: | ---: | ---: | ---: |"]
    lines += [f"| {r.name} | {r.step:,} | {_words(r.words)} | {r.tokens:,} | {r.flops:.3g} |" for r in revisions]
    lines += _evaluation(run_dir, predictions, repo_name)
    lines += ["", "## Recipe", "", "```yaml", yaml.safe_dump(recipe, sort_keys=False).rstrip(), "```"]
    cited = [CITATIONS[m] for m in dict.fromkeys(methods) if m in CITATIONS]
    if cited:
        lines += ["", "## Citation", "", *[f"- {c}" for c in cited]]
    return "\n".join(lines) + "\n"


def _train_split(data: dict) -> str:
    """The store's train split in words and tokens, when the store is still where the run found it."""
    meta = Path(str(data.get("store") or "")) / "meta.json"
    try:
        train = json.loads(meta.read_text(encoding="utf-8"))["splits"]["train"]
        return f"; its train split: {train['words']:,} words, {train['tokens']:,} tokens"
    except (OSError, ValueError, KeyError, TypeError):
        return ""


def _words(words) -> str:
    return "unknown" if words is None else f"{round(words):,}"


def _maybe_json(path: Path) -> dict:
    return read_json(path, "re-run the command that wrote it") if path.is_file() else {}


def _evaluation(run_dir: Path, predictions: dict, repo_name: str) -> list[str]:
    rows = []
    for path in sorted((run_dir / "eval").glob("*.json")) if (run_dir / "eval").is_dir() else []:
        try:
            result = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a damaged results file is left out of the card, not a reason to fail the export
        numbers = {k: result[k] for k in HEADLINES if isinstance(result, dict) and isinstance(result.get(k), (int, float))}
        if numbers:
            rows.append(f"| {path.stem} | " + ", ".join(f"{k} {v:.4g}" for k, v in numbers.items()) + " |")
    for revision, accuracy in predictions.items():
        rows += [f"| BLiMP {dataset} @ {revision} (predictions in results/{repo_name}/{revision}) | mean {a:.4g} |"
                 for dataset, a in accuracy.items()]
    if not rows:
        return []
    return ["", "## Evaluation", "", "The run's own evaluations (`tinylm eval`), of its final checkpoint unless named.",
            "", "| task | result |", "| --- | --- |", *rows]
