"""Candidate model structures for FORGETTER's "120-rule" search, and the order to try them in.

FORGETTER (Yamamoto & Miura, Section 3) found that the best Baby10M models had about 120 query
heads *in total*, whatever their depth, so a structure search need not cover the full grid: fix
the total number of heads to a band around a target, let depth vary, give each candidate a width
near ~700 rounded to a multiple of its heads, FFN x4, and a head dimension from a short range.
This module enumerates exactly that set and orders it so that a sweep stopped early has already
seen every depth (the paper's figure 1 is "best heads per layer for each layer count").
"""

from __future__ import annotations

import math
import random
from dataclasses import asdict, dataclass

from tinylm.errors import UserError
from tinylm.models.presets import PRESETS, resolve_model_config

# The fields a structure decides; a recipe's own values for them would silently override the spec.
SHAPE_KEYS = ("n_layers", "n_heads", "n_kv_heads", "d_model", "d_ff", "head_dim")


@dataclass(frozen=True)
class Structure:
    """One candidate: FORGETTER's L{layers}-{heads}({kv})-{width}x{ffn_mult}-{head_dim}."""

    layers: int
    heads: int          # query heads per layer
    kv_heads: int       # divides `heads` (grouped-query attention)
    width: int          # d_model, a multiple of `heads` as in the paper
    head_dim: int       # free of the width (minGemma), e.g. L22-8(4)-672x4-192
    ffn_mult: int = 4   # the paper's fixed x4

    @property
    def total_heads(self) -> int:
        return self.layers * self.heads

    @property
    def spec(self) -> str:
        # The (kv) part is left out when it equals the heads, as ModelConfig.spec writes it.
        kv = f"({self.kv_heads})" if self.kv_heads != self.heads else ""
        return f"L{self.layers}-{self.heads}{kv}-{self.width}x{self.ffn_mult}-{self.head_dim}"

    def attrs(self) -> dict:
        """What a trial records about its structure (ranking.json, the plot)."""
        return {"spec": self.spec, "total_heads": self.total_heads, **asdict(self)}


def parse_int_range(text: str, option: str, step: int = 1) -> tuple[int, ...]:
    """`4:48`, `64:288:32`, `672` or `640,672,704` -> the integers they name (positive, sorted).

    FIRST:LAST includes LAST when the step lands on it, like the paper's inclusive ranges.
    """
    text = str(text).strip()
    try:
        if ":" in text:
            parts = [int(p) for p in text.split(":")]
            if len(parts) not in (2, 3):
                raise ValueError
            first, last, step = parts[0], parts[1], (parts[2] if len(parts) == 3 else step)
            if step < 1 or last < first:
                raise ValueError
            values = tuple(range(first, last + 1, step))
        else:
            values = tuple(sorted({int(p) for p in text.split(",") if p.strip()}))
    except ValueError:
        raise UserError(f"{option} {text!r}: write FIRST:LAST[:STEP] with FIRST <= LAST (e.g. 4:48 or "
                        f"64:288:32), one number, or a comma list") from None
    if not values or values[0] < 1:
        raise UserError(f"{option} {text!r}: values must be positive integers")
    return values


@dataclass(frozen=True)
class StructureSpace:
    """The search space: a band of total heads, depths, width targets, head dims, kv policy."""

    target_heads: int = 120                     # FORGETTER's "about 120" (Baby10M); it moves with the data
    band: float = 0.1                           # total heads within target x (1 +- band)
    layers: tuple[int, ...] = tuple(range(4, 49))
    widths: tuple[int, ...] = (672,)            # targets; each is rounded to the nearest multiple of the heads
    head_dims: tuple[int, ...] = tuple(range(64, 289, 32))
    kv_divides: bool = False                    # True: every kv count dividing the heads; False: kv = heads
    ffn_mult: int = 4                           # "consider x4 a fixed parameter" (Section 3.2)

    @property
    def head_band(self) -> tuple[int, int]:
        """Inclusive (min, max) total query heads."""
        lo = math.ceil(self.target_heads * (1 - self.band) - 1e-9)
        hi = math.floor(self.target_heads * (1 + self.band) + 1e-9)
        return max(1, lo), hi

    def settings(self) -> dict:
        """JSON-able settings: stored with a study, so a resumed sweep proves it searches the same set."""
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}

    def candidates(self) -> list[Structure]:
        """Every structure in the space, or a UserError naming the empty constraint and how to widen it."""
        if self.target_heads < 1:
            raise UserError(f"--target-heads {self.target_heads}: the target total of query heads must be positive")
        if not 0 <= self.band < 1:
            raise UserError(f"--band {self.band}: give a fraction in [0, 1), e.g. 0.1 for +-10% around the target")
        if self.ffn_mult < 1:
            raise UserError(f"--ffn-mult {self.ffn_mult}: must be a positive integer (the paper fixes x4)")
        lo, hi = self.head_band
        out = []
        for n_layers in self.layers:
            for heads in range(math.ceil(lo / n_layers), hi // n_layers + 1):
                kvs = [k for k in range(1, heads + 1) if heads % k == 0] if self.kv_divides else [heads]
                widths = sorted({nearest_multiple(w, heads) for w in self.widths})
                for width in widths:
                    for kv in kvs:
                        for head_dim in self.head_dims:
                            out.append(Structure(n_layers, heads, kv, width, head_dim, self.ffn_mult))
        if not out:
            raise UserError(
                f"no structure has {lo}-{hi} query heads in total (--target-heads {self.target_heads}, "
                f"--band {self.band}) with a layer count in {_short(self.layers)} (--layers): every such "
                f"depth needs a whole number of heads per layer; widen --band or --layers")
        return out


def nearest_multiple(target: int, of: int) -> int:
    """The multiple of `of` nearest `target` (ties go down), at least `of` itself."""
    below = (target // of) * of
    above = below + of
    return max(of, below if target - below <= above - target else above)


def _short(values: tuple[int, ...]) -> str:
    return f"{values[0]}..{values[-1]}" if len(values) > 3 else ",".join(map(str, values))


def spread(n: int) -> list[int]:
    """0..n-1 ordered coarse to fine (ends, middle, quarters, ...), so any prefix covers the range."""
    if n <= 0:
        return []
    order = [0] + ([n - 1] if n > 1 else [])
    intervals = [(0, n - 1)]
    while intervals:
        finer = []
        for lo, hi in intervals:
            if hi - lo >= 2:
                mid = (lo + hi) // 2
                order.append(mid)
                finer += [(lo, mid), (mid, hi)]
        intervals = finer
    return order


def depth_balanced_order(candidates: list[Structure], seed: int = 0) -> list[int]:
    """Candidate indices in the order a sweep tries them.

    Round-robin over layer counts (taken coarse to fine: 4, 48, 26, 15, 37, ...), a seeded random
    pick within each depth. Why not uniform random or TPE: shallow depths have many more candidates
    (4 layers x 27-33 heads vs 40 layers x 3), so uniform sampling would starve deep models, and a
    TPE over thousands of unordered categories learns nothing in the tens of trials a budget allows.
    With as many trials as candidates this is the full grid.
    """
    rng = random.Random(seed)
    by_depth: dict[int, list[int]] = {}
    for i, s in enumerate(candidates):
        by_depth.setdefault(s.layers, []).append(i)
    depths = sorted(by_depth)
    queues = []
    for d in (depths[i] for i in spread(len(depths))):
        members = by_depth[d][:]
        rng.shuffle(members)
        queues.append(members)
    order = []
    for r in range(max(map(len, queues), default=0)):
        order += [q[r] for q in queues if r < len(q)]
    return order


def model_section(model: dict) -> dict:
    """The recipe's `model:` section with its shape left to the candidates.

    A preset (`forgetter-baby10m-normal`) keeps its architecture (gemma flavour, exact GELU, MLP
    biases, torch init...) when only `model.name` is swapped for a spec; otherwise a sweep from a
    preset recipe would silently train llama-flavoured models. The vocabulary stays the store's.
    """
    model = dict(model)
    name = str(model.pop("name", ""))
    fields = {}
    if name.strip().lower() in PRESETS:
        fields = {k: v for k, v in PRESETS[name.strip().lower()].fields.items() if k != "vocab_size"}
    fields.update(model)
    return {k: v for k, v in fields.items() if k not in SHAPE_KEYS}


def check_candidates(candidates: list[Structure], model: dict) -> None:
    """Every candidate must make a valid model with the recipe's flavour (odd head dims break RoPE...)."""
    fields = {k: v for k, v in model.items() if k not in ("name", "vocab_size")}
    flavour = fields.pop("flavour", None)
    for s in candidates:
        try:
            resolve_model_config(s.spec, flavour=flavour, **fields)
        except UserError as e:
            raise UserError(f"candidate {s.spec}: {e}") from None
