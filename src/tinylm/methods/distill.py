"""distill — pretrain a student against the mean logits of fixed teachers (ensemble distillation).

What: the loss becomes

    L = α·CE(y, z_s) + (1 − α)·T²·KL(softmax(z̄_t / T) ‖ softmax(z_s / T))

with z̄_t the *mean of the teachers' logits* (BabyLlama-2 eq. 1) and the KL averaged per token over
the positions that have a label (`distill_kl` below). T² keeps the soft term's gradients the same
size for every temperature (Hinton et al. 2015). Teachers are tinylm runs or checkpoints, or
transformers model directories, trained with the student's tokenizer; they are loaded once, kept in
eval mode without gradients, and run under the run's autocast. CE and KL are logged separately
(`distill_ce`, `distill_kl`; the KL at temperature T, without the T² factor), and the teachers'
forward FLOPs are counted apart (`distill_teacher_flops`, cumulative; `flops` stays the student's).

When it helps: small data (BabyLM's 10M words). Students distilled from an ensemble of same-size
teachers trained on the same data beat those teachers and equal-data baselines, and vary less
across seeds; the gain grows from one to three teachers, with diminishing returns. Costs a forward
per teacher per batch (a third of a same-size student's training step in FLOPs, unless cached) and
the softmax of their mean; the KL term itself is computed by the objective, fused with the
cross-entropy (losses/soft_targets.py), so it adds little more (bench/distill_cost.py measures both).

Citations: Timiryasov & Tastet, "Baby Llama: knowledge distillation from an ensemble of teachers
trained on a small dataset with no performance penalty" (BabyLM 2023); Tastet & Timiryasov,
"BabyLlama-2: Ensemble-distilled models consistently outperform teachers with limited data"
(BabyLM 2024; α = 0.5, T = 1, Table 2). Their trainer's KL was `kl_div(..., reduction="batchmean")`
on (B, T, V) logits: a sum over the sequence, not a mean over tokens (see `distill_kl`).

Recipe:
    methods: [{distill: {teachers: [runs/teacher-1, runs/teacher-2], alpha: 0.5, temperature: 1.0}}]
Optional cache of the teachers' top-k mean logits per batch, reused by a resumed run or a re-run of
the same data stream (e.g. other `train.seed`s with `data.seed` pinned, `dir:` shared between them):
`cache: {top_k: 64, dir: PATH}`.
It changes the loss to `distill_kl_top_k` (an approximation, see there), whether an entry is read or
computed, so a run is the same number for number with or without hits.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tinylm.compiling import compiled
from tinylm.errors import UserError
from tinylm.methods.base import Method, MethodConfig
from tinylm.methods.options import number
from tinylm.methods.registry import register
from tinylm.precision import autocast, run_precision, torch_dtype
from tinylm.losses.cross_entropy import IGNORE_INDEX
from tinylm.losses.soft_targets import SoftTargets, cross_entropy_kl, target_distribution

log = logging.getLogger(__name__)

CACHE_KEYS = ("top_k", "dir")


# -- the loss --------------------------------------------------------------------------------------
# The KL term is computed by the training objective, fused with its cross-entropy (losses/soft_targets.py:
# CrossEntropyKL); this method supplies the teachers' distribution (`teacher_distribution`). The two
# functions below are the same loss on its own, for evaluation and tests.
def _wide(t: torch.Tensor) -> torch.dtype:
    return torch.promote_types(t.dtype, torch.float32)


def _mask_only(labels: torch.Tensor) -> torch.Tensor:
    """Labels reduced to which positions count (the KL alone does not read the token ids)."""
    return torch.where(labels == IGNORE_INDEX, IGNORE_INDEX, 0)


def distill_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, labels: torch.Tensor,
               temperature: float = 1.0) -> torch.Tensor:
    """KL(softmax(z_t/T) ‖ softmax(z_s/T)) per token, averaged over positions whose label is not -100.

    Per token, deliberately: the BabyLlama trainer used `F.kl_div(..., reduction="batchmean")` on
    (B, T, V) tensors, which divides the summed KL by B only, i.e. it sums over the T positions of
    each sequence: seq_len (128) times this value, so its α balanced CE against ~128x the KL, and
    the balance moved with seq_len. Here α = 0.5 weighs two per-token quantities equally.
    Gradients flow to the student only.
    """
    targets = SoftTargets(*target_distribution(teacher_logits.detach(), temperature, _wide(teacher_logits)),
                          weight=1.0, temperature=float(temperature))
    return cross_entropy_kl(student_logits, _mask_only(labels), targets)[1]


def top_k_distribution(values: torch.Tensor, indices: torch.Tensor, vocab: int, temperature: float = 1.0,
                       dtype: torch.dtype | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """p̃ from the teachers' k largest mean logits, as `target_distribution` gives it: softmax of the k
    values / T placed on their token ids, zero elsewhere (the cached variant's target)."""
    scores, norm, entropy = target_distribution(values, temperature, dtype or values.dtype)
    dense = torch.zeros(*values.shape[:-1], vocab, dtype=scores.dtype, device=values.device)
    return dense.scatter_(-1, indices, scores), norm, entropy


def distill_kl_top_k(student_logits: torch.Tensor, top_values: torch.Tensor, top_indices: torch.Tensor,
                     labels: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """KL(p̃ ‖ q) per token, from the teachers' k largest mean logits only (the cached variant).

    p̃ is the teachers' distribution at temperature T kept on its top k tokens and renormalised
    (softmax of the k logits / T); q is the student's full softmax at T, so mass the student puts
    outside those k tokens still costs it. Exact when the teachers' mass outside their top k is zero;
    otherwise it drops the teachers' tail (a higher T flattens the distribution and drops more), and
    `top_k: vocab size` gives `distill_kl` back up to rounding.
    """
    targets = SoftTargets(*top_k_distribution(top_values.detach(), top_indices, student_logits.shape[-1],
                                              temperature, _wide(top_values)), weight=1.0, temperature=float(temperature))
    return cross_entropy_kl(student_logits, _mask_only(labels), targets)[1]


def teacher_distribution(teacher, input_ids: torch.Tensor, attention_mask, temperature: float,
                         dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The teachers' soft targets for a batch: softmax of their mean logits at T, as `scores` (in
    `dtype`, the student's compute dtype), `norm` and entropy (losses/soft_targets.py); one function,
    so that compiling it fuses the mean and the softmax with the teachers' last matmuls instead of
    writing float32 logits out and reading them back."""
    return target_distribution(teacher(input_ids, attention_mask), temperature, dtype)


def _store_matmul_weights_in(teacher: torch.nn.Module, dtype: torch.dtype) -> None:
    """Keep the fixed teachers' linear layers in the autocast dtype, so that autocast does not cast
    every weight again on every forward; the numbers are the same (autocast would round them to it).
    A weight another kind of module also holds (an output layer tied to the embeddings) stays."""
    if dtype == torch.float32:
        return
    held_elsewhere = {id(p) for m in teacher.modules() if not isinstance(m, torch.nn.Linear)
                      for p in m.parameters(recurse=False)}
    for module in teacher.modules():
        if isinstance(module, torch.nn.Linear) and id(module.weight) not in held_elsewhere:
            module.to(dtype)


def _compute_dtype(run) -> torch.dtype:
    """The student's logits' dtype under the run's resolved precision: the soft targets are kept in it."""
    return torch_dtype(run_precision(run))


# -- the method ------------------------------------------------------------------------------------
@dataclass
class DistillConfig(MethodConfig):
    teachers: list = field(default_factory=list)  # run dirs, checkpoints or transformers dirs (the data's tokenizer)
    alpha: float = 0.5        # weight of the data's CE; 1 - alpha goes to the teachers (BabyLlama-2: 0.5)
    temperature: float = 1.0  # softens both distributions; the KL is scaled by T² (BabyLlama-2: 1)
    cache: dict | None = None  # {top_k: 64, dir: PATH}: teachers' top-k logits per batch on disk (default dir: RUN/distill-cache)

    def __post_init__(self):
        if isinstance(self.teachers, str):
            self.teachers = [self.teachers]
        if (not isinstance(self.teachers, list) or not self.teachers
                or not all(isinstance(t, str) and t.strip() for t in self.teachers)):
            raise ValueError("teachers must list one or more trained models, e.g. "
                             "teachers: [runs/teacher-1, runs/teacher-2]")
        self.alpha = number(self.alpha, "alpha")
        if not 0.0 <= self.alpha <= 1.0:
            raise ValueError(f"alpha is {self.alpha:g}: it weighs the data's cross-entropy against the teachers' "
                             "KL, use a value in [0, 1] (BabyLlama-2: 0.5)")
        self.temperature = number(self.temperature, "temperature")
        if not self.temperature > 0:
            raise ValueError(f"temperature is {self.temperature:g}: use a positive value (1.0 keeps the teachers' "
                             "own distribution)")
        if self.cache is not None:
            if not isinstance(self.cache, dict) or "top_k" not in self.cache:
                raise ValueError("cache must be a mapping like {top_k: 64} (optionally with dir: PATH)")
            unknown = sorted(set(self.cache) - set(CACHE_KEYS))
            if unknown:
                raise ValueError(f"cache has unknown key {unknown[0]!r} (keys: {', '.join(CACHE_KEYS)})")
            top_k = number(self.cache["top_k"], "cache.top_k", int)
            if top_k < 1:
                raise ValueError(f"cache.top_k is {top_k}: keep at least 1 logit per position (64 is plenty)")
            self.cache = {**self.cache, "top_k": top_k}


@register
class Distill(Method):
    name = "distill"
    Config = DistillConfig

    def __init__(self, config: DistillConfig):
        super().__init__(config)
        self.teacher = None           # tinylm.eval.ensemble.MeanLogits over the teachers
        self.forward = None           # the teachers' logits (the top-k cache's misses); compiled when the run compiles
        self.distribution = teacher_distribution  # compiled (with the teachers) when the run compiles
        self.cache = None             # TeacherCache, with `cache:`
        self._members = []            # the loaded teachers (LoadedModel), which the cache's key names
        self.teacher_flops_per_token = 0.0
        self.teacher_flops = 0.0      # cumulative teacher forward FLOPs (state: survives resume)
        self.micro = 0                # micro-batch within the current step (the cache's key)
        self._ce = self._kl = None    # detached sums since the last log line (state, so logs resume too)
        self._n = 0

    # -- events ----------------------------------------------------------------------------------
    def check(self, run) -> None:
        if self.teacher is None:  # a missing or unfit teacher is refused before the run writes anything
            self._load_teachers(run)

    def on_start(self, run) -> None:
        if self.teacher is None:
            self._load_teachers(run)
        if self.config.cache is not None and self.cache is None:
            self.cache = self._open_cache(run, self._members)
        log.info("distill: %d teacher(s), alpha %g, temperature %g%s", len(self._members), self.config.alpha,
                 self.config.temperature, f", top-{self.cache.top_k} cache in {self.cache.dir}" if self.cache else "")
        if self.forward is None:
            _store_matmul_weights_in(self.teacher, _compute_dtype(run))
            self.forward = self.teacher
            if run.recipe.train.compile:  # both compile lazily, on first use
                self.forward = compiled(self.teacher, run.recipe.train.compile_mode)
                self.distribution = compiled(teacher_distribution, run.recipe.train.compile_mode)

    def _load_teachers(self, run) -> None:
        from tinylm.compute import forward_flops_per_token
        from tinylm.eval.ensemble import ensemble_of, load_members

        devices = [run.device] if run.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):  # building the teachers draws inits: keep the run's RNG
            loaded = load_members(self.config.teachers, run.device, who="distill: teacher")
        self._check_teachers(run, loaded)
        self.teacher = ensemble_of(loaded).to(run.device).requires_grad_(False)
        seq_len = run.recipe.data.seq_len
        self.teacher_flops_per_token = sum(forward_flops_per_token(m.model, seq_len) for m in loaded)
        self._members = loaded  # the cache (opened at start: it writes) keys on them

    def on_step_start(self, run) -> None:
        self.micro = 0

    def soft_targets(self, run, batch) -> SoftTargets:
        """The teachers' distribution for this micro-batch; the objective adds (1 − α)·T²·KL to α·CE."""
        cfg = self.config
        if self.cache is None:
            distribution = self._teacher_distribution(run, batch)
        else:
            distribution = top_k_distribution(*self._top_k(run, batch), run.model.config.vocab_size,
                                              cfg.temperature, _compute_dtype(run))
        self.micro += 1
        return SoftTargets(*distribution, weight=1.0 - cfg.alpha, temperature=cfg.temperature)

    def on_soft_loss(self, run, ce, kl) -> None:
        self._ce = ce if self._ce is None else self._ce + ce
        self._kl = kl if self._kl is None else self._kl + kl
        self._n += 1

    def on_step_end(self, run) -> None:
        if self.cache is not None:
            self.cache.flush()

    def log_metrics(self) -> dict:
        out = {}
        if self._n:
            out = {"distill_ce": float(self._ce) / self._n, "distill_kl": float(self._kl) / self._n}
        out["distill_teacher_flops"] = self.teacher_flops
        if self.cache is not None:
            hits, misses = self.cache.take_counts()
            if hits + misses:
                out["distill_cache_hit"] = hits / (hits + misses)
        self._ce = self._kl = None
        self._n = 0
        return out

    # -- teachers --------------------------------------------------------------------------------
    @torch.no_grad()
    def _teacher_logits(self, run, batch) -> torch.Tensor:
        with autocast(run.device, run_precision(run)):
            z = (self.teacher if self.forward is None else self.forward)(batch["input_ids"], batch.get("attention_mask"))
        self.teacher_flops += self.teacher_flops_per_token * batch["input_ids"].numel() * run.world.size
        return z

    @torch.no_grad()
    def _teacher_distribution(self, run, batch) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with autocast(run.device, run_precision(run)):
            out = self.distribution(self.teacher, batch["input_ids"], batch.get("attention_mask"),
                                    self.config.temperature, _compute_dtype(run))
        self.teacher_flops += self.teacher_flops_per_token * batch["input_ids"].numel() * run.world.size
        return out

    def _top_k(self, run, batch) -> tuple[torch.Tensor, torch.Tensor]:
        ids = batch["input_ids"]
        found = self.cache.lookup(run.step, self.micro, ids)
        if found is not None:
            return found
        values, indices = self._teacher_logits(run, batch).topk(self.cache.top_k, dim=-1)
        self.cache.put(run.step, self.micro, ids, values, indices)
        return values, indices

    def _check_teachers(self, run, loaded) -> None:
        from tinylm.eval.ensemble import same_tokenizer

        student = run.model.config
        store = getattr(run, "store", None)
        meta = store.meta["tokenizer"] if store is not None else {}
        for path, t in zip(self.config.teachers, loaded):
            c = t.model.config
            if store is not None and not same_tokenizer(t.tokenizer_path, store.path / meta.get("file", "tokenizer.json"),
                                                        sha_b=meta.get("sha256")):
                raise UserError(f"distill: teacher {path} was trained with tokenizer "
                                f"{t.tokenizer_name or t.tokenizer_path}, the data with {meta.get('name')!r}: use "
                                "teachers trained on this store's tokenizer, or prepare the data with the teacher's "
                                f"(tinylm prepare SOURCES --tokenizer {t.tokenizer_path} --out DIR)")
            if c.vocab_size != student.vocab_size:
                raise UserError(f"distill: teacher {path} has a vocabulary of {c.vocab_size}, the student "
                                f"{student.vocab_size}: set the student's model.vocab_size to {c.vocab_size} "
                                "(or use teachers trained with the student's tokenizer)")
            if c.kind != student.kind:
                raise UserError(f"distill: teacher {path} is a {c.kind}, the student a {student.kind}: "
                                "distil decoders from decoders and encoders from encoders")
            if c.max_seq_len < run.recipe.data.seq_len:
                raise UserError(f"distill: teacher {path} reads at most {c.max_seq_len} tokens but data.seq_len is "
                                f"{run.recipe.data.seq_len}: lower data.seq_len to {c.max_seq_len}")

    def _open_cache(self, run, loaded):
        from tinylm.methods.teacher_cache import TeacherCache, cache_key

        where = self.config.cache.get("dir")
        if where is None and run.out_dir is None:
            raise UserError("distill: `cache` needs a place on disk: set cache.dir, or train into a run directory")
        root = Path(os.path.expandvars(os.path.expanduser(where))) if where else run.out_dir / "distill-cache"
        return TeacherCache(root, cache_key(run, loaded, self.config.cache["top_k"]), run.device)

    # -- state -----------------------------------------------------------------------------------
    # The teachers are fixed (read again from their paths on resume); what moves is the FLOPs count and
    # the log window's sums, kept so a resumed run logs the same numbers as an uninterrupted one.
    def state_dict(self) -> dict:
        return {"teacher_flops": self.teacher_flops, "n": self._n,
                "ce_sum": float(self._ce) if self._n else 0.0, "kl_sum": float(self._kl) if self._n else 0.0}

    def load_state_dict(self, state: dict) -> None:
        self.teacher_flops, self._n = float(state["teacher_flops"]), int(state["n"])
        self._ce = torch.tensor(float(state["ce_sum"])) if self._n else None
        self._kl = torch.tensor(float(state["kl_sum"])) if self._n else None
