"""Fine-tune a pretrained encoder (and the same architecture from scratch) over seeds; save, reload.

``tinylm finetune`` and ``tinylm committee`` both start here. A fine-tuned model is saved as a
self-contained checkpoint directory (``model.safetensors``, ``model_config.json`` with n_classes,
the tokenizer) plus ``finetune.json``, which holds the task's description (``data/task_spec.py``:
resolved paths, file hashes, columns, split seed, per-label counts): a committee must score its
members on exactly one test set, read exactly as they were trained, and checks that it does.
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

from tinylm.data.task_spec import TaskSpec, TaskSplit, describe_task, load_split
from tinylm.data.tasks import ClassificationTask, encode_texts
from tinylm.errors import UserError
from tinylm.eval.classification import scored
from tinylm.models import ModelConfig, resolve_model_config
from tinylm.models.spec import looks_like_spec
from tinylm.train.finetune import FinetuneConfig, classifier_from, finetune, predict_logits

log = logging.getLogger(__name__)
FINETUNE_FILE = "finetune.json"


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


def load_base(run_or_model: str, tokenizer: str = "bert-base-uncased", cache: Path | None = None,
              flavour: str | None = None) -> Base:
    """A pretraining run/checkpoint, or (for from-scratch models) a model name such as ``bert-1``; a spec
    (``L1-2-32x2``) is an encoder (flavour bert) unless ``flavour`` says otherwise: only encoders classify."""
    from tinylm.loading import load_model

    path = Path(run_or_model).expanduser()
    if path.exists():
        loaded = load_model(path)
        return Base(loaded.model, loaded.model.config, loaded.tokenizer_path, loaded.special_ids, str(path))
    try:
        spec = looks_like_spec(run_or_model.partition("+")[0])
        config = resolve_model_config(run_or_model, flavour=flavour or ("bert" if spec else None))
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
    spec: TaskSpec  # as used: per-label sizes filled in
    split: TaskSplit
    description: dict  # data/task_spec.describe_task: saved with every fine-tuned model
    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # input_ids, attention_mask, labels
    test: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    encode: object  # item indices -> (input_ids, attention_mask, labels), for a validation carve

    @property
    def task(self) -> ClassificationTask:
        return self.split.task


def prepare_task(spec: TaskSpec, base: Base) -> TaskData:
    """Read the task, draw its split and encode both halves with the base's tokenizer."""
    split = load_split(spec)
    task, tok, ids = split.task, base.tokenizer, base.special_ids
    pad = ids.get("pad", 0)

    def encode(idx):
        x, m = encode_texts(tok, [task.texts[i] for i in idx], base.config.max_seq_len, ids.get("cls"),
                            ids.get("sep"), pad)
        return x, m, torch.from_numpy(task.labels[idx].astype(np.int64))

    return TaskData(split.spec, split, describe_task(split), encode(split.train), encode(split.test), encode)


def finetune_one(base: Base, data: TaskData, cfg: FinetuneConfig, seed: int, scratch: bool,
                 out: Path | None = None, on_epoch=None) -> dict:
    """Fine-tune one seed, score the test half (accuracy, per class, confusion matrix); save the model
    under ``out`` when given."""
    model, stats = fit(base, data.train, data.task.n_labels, cfg, seed, scratch, on_epoch)
    logits = predict_logits(model, data.test[0], data.test[1], cfg.eval_batch_size)
    result = {"seed": seed, "scratch": scratch, "lr": cfg.lr, **stats,
              **scored(logits, data.test[2], data.task.label_names)}
    if out is not None:
        save_finetuned(model, out, base, data, cfg, result)
    return result


def fit(base: Base, train, n_labels: int, cfg: FinetuneConfig, seed: int, scratch: bool, on_epoch=None):
    """(classifier, {"steps", "final_loss"}): fine-tuned on ``train`` (input_ids, attention_mask, labels)
    from the base's weights or from scratch."""
    if not scratch:
        require_pretrained(base)
    model = classifier_from(None if scratch else base.model, base.config, n_labels, seed)
    return model, finetune(model, *train, cfg, seed=seed, on_epoch=on_epoch)


def require_pretrained(base: Base) -> None:
    if base.model is None:
        raise UserError(f"{base.source} is a model name, not a pretrained run: add --scratch, or give a run "
                        "directory trained with `tinylm train`")


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
    info = {"task": data.description, "label_names": data.task.label_names, "base": base.source,
            "finetune": cfg.__dict__, **result}
    (tmp / FINETUNE_FILE).write_text(json.dumps(info, indent=1))
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def load_finetuned(path):
    """(LoadedModel, finetune.json) of a model written by ``tinylm finetune --out``."""
    from tinylm.loading import load_model

    path = Path(path).expanduser()
    info_file = path / FINETUNE_FILE
    if not info_file.is_file():
        raise UserError(f"{path} is not a fine-tuned model (no {FINETUNE_FILE}); fine-tune it first: "
                        f"`tinylm finetune RUN --task T --out DIR` and give DIR/pretrained/seed-0")
    info = json.loads(info_file.read_text())
    if "task" not in info:
        raise UserError(f"{path} was fine-tuned by an older tinylm that did not save its task's description; "
                        "fine-tune it again with `tinylm finetune ... --out DIR`")
    loaded = load_model(path)
    if not loaded.model.config.n_classes:
        raise UserError(f"{path} has no classification head; fine-tune it first")
    return loaded, info
