"""What every tinylm model shares: its own init, drawn one parameter at a time, and growth.

Methods such as FORGET (``reinit(params)``) and GROW (``grow(n_layers)``) need "the model's own
init" for an arbitrary subset of parameters. So the whole-model init at construction is nothing but
``init_parameter_`` called on every parameter, and each parameter's draw comes from its own
generator seeded by ``(seed, qualified name)``. Consequences:

* ``init_parameter_(name, p, seed=model.init_seed)`` reproduces exactly the value ``p`` had at
  construction, whatever else was re-initialised before it;
* ``init_parameter_(name, p)`` (no seed) draws fresh weights, deterministically given torch's
  global RNG state (it consumes one draw from it);
* values are drawn on the CPU in float32 and copied, so the init is the same on every device.
"""

from __future__ import annotations

import copy
import math
import zlib

import torch
from torch import nn

from tinylm.errors import UserError
from tinylm.models.config import ModelConfig
from tinylm.models.layers import NORM_TYPES, OffsetRMSNorm

# Linear layers that write into the residual stream; GPT-2 scales their init by 1/sqrt(2 L).
RESIDUAL_PROJECTIONS = ("attn.o_proj", "mlp.down_proj")


def fresh_seed() -> int:
    """One draw from torch's global RNG, used as the root of a family of per-parameter streams."""
    return int(torch.randint(0, 2**62, (1,), device="cpu").item())


def _stream(seed: int, name: str) -> torch.Generator:
    mixed = (int(seed) * 1_000_003 + zlib.crc32(name.encode())) % (2**63 - 1)
    return torch.Generator(device="cpu").manual_seed(mixed)


class TinyLM(nn.Module):
    """Base of ``Decoder`` and ``Encoder``: config, per-parameter init, ``append_layers``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = copy.deepcopy(config)  # the model owns its config (append_layers edits it)
        self.init_seed: int = 0

    # ----------------------------------------------------------------- blocks (subclass)
    def _make_block(self) -> nn.Module:
        raise NotImplementedError

    # ----------------------------------------------------------------- init
    def _init_all_(self, seed: int | None = None) -> None:
        """Construction init: every parameter through ``init_parameter_`` with one seed."""
        self.init_seed = fresh_seed() if seed is None else seed
        for name, param in self.named_parameters():
            self.init_parameter_(name, param, seed=self.init_seed)

    @torch.no_grad()
    def init_parameter_(self, name: str, param: torch.Tensor | None = None, *,
                        seed: int | None = None) -> torch.Tensor:
        """Draw, in place, this model's own init for the parameter called ``name``.

        ``param`` defaults to the model's parameter of that name (pass it explicitly for a tensor
        that mirrors it, e.g. a copy). ``seed=None`` draws fresh values; ``seed=model.init_seed``
        reproduces the construction values.
        """
        if param is None:
            try:
                param = self.get_parameter(name)
            except AttributeError as exc:
                raise UserError(f"model has no parameter {name!r}; see model.named_parameters()") from exc
        if param.device.type == "meta":
            return param
        module_name, _, leaf = name.rpartition(".")
        try:
            module = self.get_submodule(module_name) if module_name else self
        except AttributeError as exc:
            raise UserError(f"model has no parameter {name!r}; see model.named_parameters()") from exc
        gen = _stream(fresh_seed() if seed is None else seed, name)
        in_place = param.device.type == "cpu" and param.dtype == torch.float32
        out = param if in_place else torch.empty(tuple(param.shape), dtype=torch.float32, device="cpu")
        self._draw(module_name, module, leaf, out, gen)
        if not in_place:
            param.copy_(out)
        return param

    def _draw(self, module_name: str, module: nn.Module, leaf: str, out: torch.Tensor,
              gen: torch.Generator) -> torch.Tensor:
        """Fill ``out`` (CPU, float32) with the reference init: HF ``_init_weights`` or PyTorch's defaults."""
        cfg = self.config
        torch_defaults = cfg.init_scheme == "torch"
        if isinstance(module, NORM_TYPES):
            if leaf == "weight" and not isinstance(module, OffsetRMSNorm):
                return out.fill_(1.0)
            return out.zero_()  # biases, and Gemma's (1 + w) weight
        if isinstance(module, nn.Embedding):
            out.normal_(0.0, 1.0 if torch_defaults else cfg.init_std, generator=gen)
            if module.padding_idx is not None:
                out[module.padding_idx].zero_()
            return out
        if isinstance(module, nn.Linear):
            if torch_defaults:  # kaiming_uniform_(a=sqrt(5)) and its bias: U(+-1/sqrt(fan_in))
                bound = 1.0 / math.sqrt(module.in_features)
                return out.uniform_(-bound, bound, generator=gen)
            if leaf == "bias":
                return out.zero_()
            std = cfg.init_std
            if cfg.flavour == "gpt2" and module_name.endswith(RESIDUAL_PROJECTIONS):
                std = std / math.sqrt(2 * cfg.n_layers)
            return out.normal_(0.0, std, generator=gen)
        if leaf.endswith("bias"):  # free-standing output biases (BERT's MLM decoder bias)
            return out.zero_()
        raise ValueError(f"no init rule for parameter {module_name}.{leaf} ({type(module).__name__})")

    # ----------------------------------------------------------------- growth
    def append_layers(self, n: int) -> list[str]:
        """Append ``n`` freshly initialised blocks; returns the new parameters' qualified names.

        The new blocks take the device and dtype of the existing ones and draw their init from a
        fresh seed (GPT-2's residual scaling uses the new depth). ``config.n_layers`` is updated.
        """
        if not isinstance(n, int) or isinstance(n, bool) or n < 1:
            raise UserError(f"append_layers needs a positive number of layers, got {n!r}")
        ref = next(self.layers.parameters())
        start = len(self.layers)
        self.config.n_layers = start + n
        seed = fresh_seed()
        names: list[str] = []
        for index in range(start, start + n):
            block = self._make_block().to(device=ref.device, dtype=ref.dtype)
            self.layers.append(block)
            for pname, param in block.named_parameters():
                full = f"layers.{index}.{pname}"
                self.init_parameter_(full, param, seed=seed)
                names.append(full)
        return names

    def truncate_layers(self, n: int) -> list[str]:
        """Keep the first ``n`` blocks and drop the rest; returns the dropped parameters' names.

        Growth that starts small (``grow``) builds the recipe's full model and cuts it to the first
        stage's depth, so the recipe names the final model and the kept blocks keep their
        construction init. ``config.n_layers`` is updated, so checkpoints record the real depth.
        """
        if not isinstance(n, int) or isinstance(n, bool) or not 1 <= n <= len(self.layers):
            raise UserError(f"truncate_layers needs 1..{len(self.layers)} layers to keep, got {n!r}")
        dropped = [f"layers.{i}.{p}" for i in range(n, len(self.layers))
                   for p, _ in self.layers[i].named_parameters()]
        del self.layers[n:]
        self.config.n_layers = n
        return dropped

    # ----------------------------------------------------------------- helpers
    def reset_buffers_(self) -> None:
        """Recompute derived buffers (RoPE tables) after ``to_empty`` from a meta-device build."""
        for module in self.modules():
            if hasattr(module, "reset_tables_"):
                module.reset_tables_()
