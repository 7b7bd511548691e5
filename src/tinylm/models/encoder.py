"""The one encoder: BERT as Devlin et al. built it (post-LN), with MLM and classification heads.

Post-LN (``norm(x + sublayer(x))``) is kept as in the original and in ``BertForMaskedLM`` so the
tiny-language-model committee results (BERT-1, BERT-6) are reproduced with the architecture they
used, and so weights map 1:1 onto Hugging Face. ``forward`` returns MLM logits; ``classify``
returns sequence-classification logits from the pooled [CLS] token.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.errors import UserError
from tinylm.models.base import TinyLM
from tinylm.models.config import ModelConfig
from tinylm.models.conv_stem import ConvStem, MaskedBatchNorm2d
from tinylm.models.layers import MLP, Attention, make_activation, make_norm, padding_mask


class EncoderBlock(nn.Module):
    """Post-norm block: ``x = norm(x + attn(x))``, ``x = norm(x + mlp(x))``."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attn = Attention(config, causal=False)
        self.attn_norm = make_norm(config)
        self.mlp = MLP(config)
        self.mlp_norm = make_norm(config)
        self.drop = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        x = self.attn_norm(x + self.drop(self.attn(x, None, mask)))
        return self.mlp_norm(x + self.drop(self.mlp(x)))


class Encoder(TinyLM):
    """Bidirectional masked language model with an optional sequence-classification head."""

    def __init__(self, config: ModelConfig):
        if config.kind != "encoder":
            raise UserError(f"Encoder needs an encoder config (flavour 'bert'), got {config.flavour!r}")
        super().__init__(config)
        cfg = self.config
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model, padding_idx=cfg.pad_token_id)
        self.embed_positions = nn.Embedding(cfg.max_seq_len, cfg.d_model)
        self.embed_token_types = (nn.Embedding(cfg.type_vocab_size, cfg.d_model)
                                  if cfg.type_vocab_size else None)
        self.embed_norm = make_norm(cfg)
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        # Convolutional stem between the embeddings and the first block (the committee paper's
        # "BERT-1 + 2 conv layers", ``bert-1+conv2x64k3x3``); it respects the padding mask.
        self.conv_stem: nn.Module | None = ConvStem(cfg.conv_stem) if cfg.conv_stem else None
        self.layers = nn.ModuleList(self._make_block() for _ in range(cfg.n_layers))
        # MLM head as BertForMaskedLM: dense + act + LayerNorm, then decoder (tied) + bias.
        self.mlm_transform = nn.Linear(cfg.d_model, cfg.d_model)
        self.mlm_act = make_activation(cfg.activation)
        self.mlm_norm = make_norm(cfg)
        self.lm_head = None if cfg.tie_embeddings else nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.mlm_bias = nn.Parameter(torch.zeros(cfg.vocab_size))
        # Classification head as BertForSequenceClassification: tanh pooler on [CLS] + linear.
        if cfg.n_classes:
            self.pooler = nn.Linear(cfg.d_model, cfg.d_model)
            self.classifier = nn.Linear(cfg.d_model, cfg.n_classes)
        else:
            self.pooler = self.classifier = None
        self._init_all_()

    def _make_block(self) -> nn.Module:
        return EncoderBlock(self.config)

    def _draw(self, module_name, module, leaf, out, gen):
        if isinstance(module, (nn.Conv2d, MaskedBatchNorm2d)):  # only the conv stem has these
            return ConvStem.draw_init(module, leaf, out, gen)
        return super()._draw(module_name, module, leaf, out, gen)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
               token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Final hidden states (B, T, d_model)."""
        T = input_ids.shape[1]
        if T > self.config.max_seq_len:
            raise UserError(
                f"sequence of {T} tokens is longer than the model's max_seq_len "
                f"({self.config.max_seq_len}); truncate inputs or raise max_seq_len"
            )
        x = self.embed_tokens(input_ids) + self.embed_positions.weight[:T]
        if self.embed_token_types is not None:
            if token_type_ids is None:  # all segment 0, as HF's default token_type_ids
                x = x + self.embed_token_types.weight[0]
            else:
                x = x + self.embed_token_types(token_type_ids)
        x = self.drop(self.embed_norm(x))
        if self.conv_stem is not None:
            x = self.conv_stem(x, attention_mask)
        mask = padding_mask(attention_mask, causal=False) if attention_mask is not None else None
        for layer in self.layers:
            x = layer(x, mask)
        return x

    predicts_at = True  # forward(..., at=) computes the MLM head at chosen positions only (losses/labelled.py)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                token_type_ids: torch.Tensor | None = None, at: torch.Tensor | None = None) -> torch.Tensor:
        """MLM logits (B, T, vocab); with `at` (B, T bool), (n, vocab) for its n true positions, in order.

        The head (transform, norm, a decoder over the whole vocabulary) costs per position it predicts,
        and only the masked positions have a label: at d_model 64 and bert-base's 30,522 tokens the
        decoder alone is most of a tiny encoder's step, so heading only the 15% masked skips most of it."""
        h = self.encode(input_ids, attention_mask, token_type_ids)
        if at is not None:
            h = h[at]
        h = self.mlm_norm(self.mlm_act(self.mlm_transform(h)))
        weight = self.embed_tokens.weight if self.lm_head is None else self.lm_head.weight
        return F.linear(h, weight, self.mlm_bias)

    def classify(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 token_type_ids: torch.Tensor | None = None) -> torch.Tensor:
        """Sequence-classification logits (B, n_classes) from the pooled first ([CLS]) token."""
        if self.classifier is None:
            raise UserError("this encoder has no classification head; build it with n_classes > 0")
        h = self.encode(input_ids, attention_mask, token_type_ids)
        pooled = torch.tanh(self.pooler(h[:, 0]))
        return self.classifier(self.drop(pooled))
