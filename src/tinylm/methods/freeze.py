"""freeze — train only some parameters; the rest of the model stays fixed.

What: at the start of the run, `set_trainable` keeps the named parameters (roles or exact names)
trainable and freezes everything else; frozen parameters get neither updates nor weight decay.
When: adapting a pretrained body to a new language by re-learning only its vocabulary
(Artetxe et al. 2020; Chen et al. 2023, "Improving language plasticity via pretraining with active
forgetting"; GAFF's adaptation phase), or linear probing.
Recipe: `methods: [{freeze: {train: [embeddings, output]}}]`
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tinylm.methods.base import Method, MethodConfig
from tinylm.methods.embedding_params import select_embedding_params
from tinylm.methods.registry import register


@dataclass
class FreezeConfig(MethodConfig):
    train: list = field(default_factory=lambda: ["embeddings", "output"])  # roles: embeddings, output, positions, or names

    def __post_init__(self):
        if isinstance(self.train, str):
            self.train = [self.train]
        if not self.train:
            raise ValueError("`train` names no parameters: list roles (embeddings, output) or parameter names")


@register
class Freeze(Method):
    name = "freeze"
    Config = FreezeConfig

    def check(self, run) -> None:
        self._trained(run)  # an unknown parameter or role is refused here

    def _trained(self, run) -> set[str]:
        names = [n for n, _ in run.model.named_parameters()]
        return set(select_embedding_params(names, self.config.train, tied=run.model.lm_head is None, who="freeze"))

    def on_start(self, run) -> None:
        keep = self._trained(run)
        if {n for n, p in run.model.named_parameters() if p.requires_grad} != keep:
            run.set_trainable(lambda name, p: name in keep)
