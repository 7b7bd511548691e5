"""Language adaptation as a recipe: pretrained body, new tokenizer, fresh embeddings, body frozen.

The recipe is the pretraining run's own, with the new language's store, `model.init_from` the
pretrained checkpoint (vocabulary tensors re-drawn, everything else copied) and the `freeze`
method training only embeddings and output layer.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tinylm.errors import UserError
from tinylm.rundir.checkpoints import resolve_checkpoint
from tinylm.rundir.curves import area_under_curve, curve, steps_to_reach
from tinylm.rundir.serialize import write_json
from tinylm.runs.execute import execute
from tinylm.train.build import recipe_for_run
from tinylm.train.recipe import apply_overrides, recipe_from_dict


ADAPTATION_FILES = ("store", "run", "adaptation.json")  # what `adapt` writes into its --out


def _sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def adaptation_store(corpus, store, tokenizer: str, out: Path, seed: int, docs: str = "line"):
    from tinylm.data import TokenStore, prepare_store
    if store is not None:
        return TokenStore.open(store)
    path = out / "store"
    if not (path / "meta.json").exists():
        prepare_store(corpus, tokenizer, path, val_fraction=0.1, seed=seed, docs=docs)
    return TokenStore.open(path)


def adaptation_recipe(run_dir: Path, ckpt: Path, store_path: Path, duration: str, lr: float | None, seed: int,
                      overrides=()):
    """The pretraining recipe turned into the adaptation's: new store, weights from `ckpt`, body frozen."""
    data = recipe_for_run(run_dir).to_dict()
    data["name"] = f"{data['name']}-adapted"
    data["data"] = {**data["data"], "store": str(store_path), "sources": None}
    data["model"] = {"name": "init_from", "init_from": str(ckpt)}
    data["methods"] = [{"freeze": {"train": ["embeddings", "output"]}}]
    data["train"] = {**data["train"], "duration": duration, "seed": seed}
    if lr is not None:
        data["train"]["lr"] = lr
    return recipe_from_dict(apply_overrides(data, list(overrides)))


def adapt(run, out, corpus=None, store=None, tokenizer: str = "bpe:8000", duration: str = "500 steps",
          lr: float | None = None, target_loss: float | None = None, seed: int = 0, overrides=(),
          resume: bool = False, docs: str = "line") -> dict:
    ckpt, run_dir = resolve_checkpoint(run)
    if run_dir is None:
        raise UserError(f"{run} is a bare checkpoint: give its run directory (adaptation reuses the run's recipe)")
    out = Path(out)
    # The whole recipe (duration, lr, --set) is checked before the new language's store is prepared into `out`.
    adaptation_recipe(run_dir, ckpt, Path(store) if store is not None else out / "store", duration, lr, seed,
                      overrides)
    new_store = adaptation_store(corpus, store, tokenizer, out, seed, docs)
    if _sha(ckpt / "tokenizer.json") == _sha(new_store.path / new_store.meta["tokenizer"].get("file", "tokenizer.json")):
        raise UserError(f"token store {new_store.path} uses the pretraining tokenizer; adaptation needs a new one: "
                        "pass --corpus with --tokenizer bpe:N (or a store prepared with a new tokenizer)")
    recipe = adaptation_recipe(run_dir, ckpt, new_store.path, duration, lr, seed, overrides)
    summary = execute(recipe, out / "run", resume=resume, force=resume)
    points = curve(out / "run", "loss")
    report = {"pretrained": str(ckpt), "store": str(new_store.path), "steps": summary["steps"],
              "final_loss": points[-1][1] if points else None, "val_loss": summary.get("val_loss"),
              "loss_auc": area_under_curve(points), "target_loss": target_loss,
              "steps_to_target": steps_to_reach(points, target_loss) if target_loss is not None else None}
    write_json(out / "adaptation.json", report)
    return report
