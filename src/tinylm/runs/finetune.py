"""Fine-tune a pretrained encoder (and the same architecture from scratch) over seeds; save, reload.

``tinylm finetune`` and ``tinylm committee`` both start here. A fine-tuned model is saved as a
self-contained checkpoint directory (``model.safetensors``, ``model_config.json`` with n_classes,
the tokenizer) plus ``finetune.json``, which records the task and its split (per-label sizes and
split seed): a committee must score its members on exactly one test set, and checks that it does.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import save_file

from tinylm.data.tasks import DEFAULT_PER_LABEL, ClassificationTask, balanced_split, encode_texts, load_task
from tinylm.errors import UserError
from tinylm.models import ModelConfig, resolve_model_config
from tinylm.train.finetune import FinetuneConfig, accuracy, classifier_from, finetune, predict_logits

log = logging.getLogger(__name__)
FINETUNE_FILE = "finetune.json"


@dataclass
class SplitSpec:
    """Which task and which balanced split: everything a committee member must share."""

    task: str
    labels: int | None = None  # FewRel: how many relations
    train_per_label: int | None = None  # None: the task's default (DEFAULT_PER_LABEL)
    test_per_label: int | None = None
    split_seed: int = 0
    label_column: str = "label"

    def resolved(self) -> "SplitSpec":
        kind = self.task.split(":", 1)[0].lower()
        train, test = DEFAULT_PER_LABEL.get(kind, DEFAULT_PER_LABEL["csv"])
        return SplitSpec(self.task, self.labels, self.train_per_label or train, self.test_per_label or test,
                         self.split_seed, self.label_column)

    def key(self) -> dict:
        return {k: getattr(self, k) for k in ("task", "labels", "train_per_label", "test_per_label", "split_seed")}


@dataclass
class Base:
    """What fine-tuning starts from: pretrained weights (or None), their config, the tokenizer."""

    model: torch.nn.Module | None
    config: ModelConfig
    tokenizer_path: Path
    special_ids: dict
    source: str

    @property
    def tokenizer(self):
        from tokenizers import Tokenizer
        return Tokenizer.from_file(str(self.tokenizer_path))


def load_base(run_or_model: str, tokenizer: str = "bert-base-uncased", cache: Path | None = None) -> Base:
    """A pretraining run/checkpoint, or (for from-scratch models) a model name such as ``bert-1``."""
    from tinylm.runs.load import load_model

    path = Path(run_or_model).expanduser()
    if path.exists():
        loaded = load_model(path)
        return Base(loaded.model, loaded.model.config, loaded.tokenizer_path, loaded.special_ids, str(path))
    try:
        config = resolve_model_config(run_or_model)
    except UserError as e:
        raise UserError(f"{run_or_model} is neither a run directory nor a model ({e})") from None
    from tinylm.data.tokenizer import load_tokenizer, special_ids

    tok = load_tokenizer(tokenizer)
    target = Path(cache or Path.home() / ".cache" / "tinylm" / "tokenizers") / f"{Path(tokenizer).name}.json"
    target.parent.mkdir(parents=True, exist_ok=True)
    tok.save(str(target))
    return Base(None, config, target, special_ids(tok), run_or_model)


@dataclass
class TaskData:
    spec: SplitSpec
    task: ClassificationTask
    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # input_ids, attention_mask, labels
    test: tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def prepare_task(spec: SplitSpec, base: Base) -> TaskData:
    """Read the task, draw its balanced split and encode both halves with the base's tokenizer."""
    spec = spec.resolved()
    task = load_task(spec.task, spec.labels, spec.label_column)
    train_idx, test_idx = balanced_split(task, spec.train_per_label, spec.test_per_label, spec.split_seed)
    tok, ids = base.tokenizer, base.special_ids
    pad = ids.get("pad", 0)

    def encode(idx):
        x, m = encode_texts(tok, [task.texts[i] for i in idx], base.config.max_seq_len, ids.get("cls"),
                            ids.get("sep"), pad)
        return x, m, torch.from_numpy(task.labels[idx].astype(np.int64))

    return TaskData(spec, task, encode(train_idx), encode(test_idx))


def finetune_one(base: Base, data: TaskData, cfg: FinetuneConfig, seed: int, scratch: bool,
                 out: Path | None = None) -> dict:
    """Fine-tune one seed, score the test half; save the model under ``out`` when given."""
    if scratch is False and base.model is None:
        raise UserError(f"{base.source} is a model name, not a pretrained run: add --scratch, or give a run "
                        "directory trained with `tinylm train`")
    model = classifier_from(None if scratch else base.model, base.config, data.task.n_labels, seed)
    stats = finetune(model, *data.train, cfg, seed=seed)
    logits = predict_logits(model, data.test[0], data.test[1], cfg.eval_batch_size)
    result = {"seed": seed, "scratch": scratch, "accuracy": accuracy(logits, data.test[2]), **stats}
    if out is not None:
        save_finetuned(model, out, base, data, cfg, result)
    return result


def save_finetuned(model, out: Path, base: Base, data: TaskData, cfg: FinetuneConfig, result: dict) -> Path:
    out = Path(out)
    tmp = out.parent / f".tmp-{out.name}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_file({k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()},
              str(tmp / "model.safetensors"), metadata={"format": "pt"})
    (tmp / "model_config.json").write_text(json.dumps(model.config.to_dict(), indent=1))
    shutil.copyfile(base.tokenizer_path, tmp / "tokenizer.json")
    (tmp / "tokenizer_meta.json").write_text(json.dumps({"special_ids": base.special_ids}, indent=1))
    info = {"split": data.spec.key(), "label_names": data.task.label_names, "base": base.source,
            "finetune": cfg.__dict__, **result}
    (tmp / FINETUNE_FILE).write_text(json.dumps(info, indent=1))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def load_finetuned(path):
    """(LoadedModel, finetune.json) of a model written by ``tinylm finetune --out``."""
    from tinylm.runs.load import load_model

    path = Path(path).expanduser()
    info_file = path / FINETUNE_FILE
    if not info_file.is_file():
        raise UserError(f"{path} is not a fine-tuned model (no {FINETUNE_FILE}); fine-tune it first: "
                        f"`tinylm finetune RUN --task T --out DIR` and give DIR/pretrained/seed-0")
    loaded = load_model(path)
    if not loaded.model.config.n_classes:
        raise UserError(f"{path} has no classification head; fine-tune it first")
    return loaded, json.loads(info_file.read_text())
