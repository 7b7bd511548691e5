"""The committee paper's convolutional stem: a few conv layers between BERT's embeddings and block 1.

Gross et al. (tiny language models, table 8) put 1-3 convolution layers (CLs) before a single BERT
block: the (T x d_model) embedding matrix is read as a one-channel image, each CL is
``Conv2d(same) -> BatchNorm -> GELU`` with ``d`` filters, and a final 1x1 conv (+ BatchNorm + GELU)
projects the filters back to one channel, so the block sees (T, d_model) again. That is their
``ConvolutionLayers`` (Rg32601/Tiny-Language-Models), with two fixes the reference lacks:

* padding is respected: padded positions are set to zero before every conv, and BatchNorm's batch
  statistics are taken over real positions only. A batch padded to 128 and the same batch padded to
  its longest row give the same outputs on the real tokens (in train and eval mode);
* the stem is part of ``ModelConfig`` (``conv_stem: "2x64k3x3"``), so a checkpoint rebuilds it. The
  reference's loader dropped it silently.

Notation (``LAYERSxFILTERSkKERNEL``): ``2x64k3x3`` = 2 CLs of 64 filters with 3 (sequence) x 3
(embedding) kernels; ``2x64k16x3`` = 16 tokens x 3 channels; ``1x64k3`` = a 1-D kernel of 3 along the
embedding dimension only (each token convolved alone, as the paper's 1-D variant).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from tinylm.errors import UserError

STEM_FORMAT = "<layers>x<filters>k<kernel>, kernel = <along embedding> or <tokens>x<embedding>"
_STEM_RE = re.compile(r"^(?P<layers>\d+)x(?P<filters>\d+)k(?P<a>\d+)(?:x(?P<b>\d+))?$")


@dataclass(frozen=True)
class StemSpec:
    layers: int
    filters: int
    kernel: tuple[int, int]  # (along the sequence, along the embedding)

    @property
    def text(self) -> str:
        k = f"{self.kernel[1]}" if self.kernel[0] == 1 else f"{self.kernel[0]}x{self.kernel[1]}"
        return f"{self.layers}x{self.filters}k{k}"

    def parameters(self) -> int:
        """Weights, biases and BatchNorm affine parameters of the whole stem (closed form)."""
        kh, kw = self.kernel
        total, channels = 0, 1
        for _ in range(self.layers):
            total += channels * self.filters * kh * kw + self.filters + 2 * self.filters
            channels = self.filters
        return total + channels + 1 + 2  # 1x1 projection to one channel, its bias and BatchNorm


def parse_conv_stem(text: str) -> StemSpec:
    """``"2x64k3x3"`` -> StemSpec(2, 64, (3, 3)); ``"1x64k3"`` -> a 1-D (1, 3) kernel."""
    match = _STEM_RE.match(str(text).strip().lower()) if text is not None else None
    if match is None:
        raise UserError(f"malformed convolutional stem {text!r}; expected {STEM_FORMAT}, "
                        "e.g. 'conv2x64k3x3' (2 layers, 64 filters, 3x3) or 'conv1x64k3' (1-D)")
    layers, filters = int(match["layers"]), int(match["filters"])
    kernel = (1, int(match["a"])) if match["b"] is None else (int(match["a"]), int(match["b"]))
    if layers < 1 or filters < 1 or min(kernel) < 1:
        raise UserError(f"convolutional stem {text!r}: layers, filters and kernel sizes must be positive")
    return StemSpec(layers, filters, kernel)


class MaskedBatchNorm2d(nn.Module):
    """BatchNorm2d whose batch statistics cover only real (unpadded) positions.

    Plain BatchNorm would average the padded zeros into its mean and variance, so how wide a batch
    was padded would change every real token's output. Eval mode uses running statistics (updated
    with momentum 0.1 and the unbiased variance, as ``nn.BatchNorm2d``).
    """

    def __init__(self, channels: int, eps: float = 1e-5, momentum: float = 0.1):
        super().__init__()
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.register_buffer("running_mean", torch.zeros(channels))
        self.register_buffer("running_var", torch.ones(channels))

    def reset_tables_(self) -> None:
        """Buffers after a meta-device build (``TinyLM.reset_buffers_``)."""
        with torch.no_grad():
            self.running_mean.zero_()
            self.running_var.fill_(1.0)

    def forward(self, x: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        # x: (B, C, T, D); keep: (B, 1, T, 1) float, 1 on real positions.
        if self.training:
            count = (keep.sum() * x.shape[-1]).clamp_min(1.0)
            mean = (x * keep).sum(dim=(0, 2, 3)) / count
            var = (((x - mean.view(1, -1, 1, 1)) ** 2) * keep).sum(dim=(0, 2, 3)) / count
            with torch.no_grad():
                unbiased = var * count / (count - 1).clamp_min(1.0)
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(unbiased.detach(), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        scale = self.weight * torch.rsqrt(var + self.eps)
        return (x - mean.view(1, -1, 1, 1)) * scale.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class ConvStem(nn.Module):
    """``(x (B, T, D), attention_mask (B, T) or None) -> (B, T, D)``; see the module docstring."""

    def __init__(self, spec: StemSpec | str):
        super().__init__()
        self.spec = parse_conv_stem(spec) if isinstance(spec, str) else spec
        kh, kw = self.spec.kernel
        channels = [1] + [self.spec.filters] * self.spec.layers
        self.convs = nn.ModuleList(nn.Conv2d(channels[i], channels[i + 1], (kh, kw), padding="same")
                                   for i in range(self.spec.layers))
        self.norms = nn.ModuleList(MaskedBatchNorm2d(channels[i + 1]) for i in range(self.spec.layers))
        self.project = nn.Conv2d(channels[-1], 1, 1)
        self.project_norm = MaskedBatchNorm2d(1)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        B, T, D = x.shape
        if attention_mask is None:
            keep = x.new_ones(B, 1, T, 1)
        else:
            keep = attention_mask.to(x.dtype).view(B, 1, T, 1)
        h = x.view(B, 1, T, D)
        for conv, norm in zip(self.convs, self.norms):
            h = F.gelu(norm(conv(h * keep), keep))  # zero the padding before every conv
        h = F.gelu(self.project_norm(self.project(h * keep), keep))
        return h.view(B, T, D) * keep.view(B, T, 1)

    @staticmethod
    def draw_init(module: nn.Module, leaf: str, out: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        """The reference's init: PyTorch's Conv2d default (HF's ``_init_weights`` leaves convs alone),
        BatchNorm weight 1 and bias 0."""
        if isinstance(module, MaskedBatchNorm2d):
            return out.fill_(1.0) if leaf == "weight" else out.zero_()
        fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
        bound = 1.0 / math.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)) and its bias: U(+-1/sqrt(fan_in))
        return out.uniform_(-bound, bound, generator=gen)


def stem_layers(config) -> int:
    """Convolution layers the paper counts for latency (the 1x1 projection is not counted)."""
    return parse_conv_stem(config.conv_stem).layers if getattr(config, "conv_stem", None) else 0
