"""FORGETTER's model notation, ``L22-8(4)-672x4-192``, read into config fields.

The paper (Section 2.2.1) names a model by: layers - query heads (key/value heads) - width x ffn
multiple - head dimension. Reading the same string the paper prints keeps recipes and tables
comparable at a glance. The kv part and the head dim are optional (``L6-8-512x4`` is 8 heads of
64). The flavour is not part of the notation and is given separately (default llama).
"""

from __future__ import annotations

import re
from typing import Any

from tinylm.errors import UserError

SPEC_FORMAT = "L<layers>-<heads>[(<kv heads>)]-<width>x<ffn multiple>[-<head dim>]"
SPEC_EXAMPLES = "'L22-8(4)-672x4-192' or 'L6-8-512x4'"

_SPEC_RE = re.compile(
    r"""^L(?P<layers>\d+)
        -(?P<heads>\d+)(?:\((?P<kv>\d+)\))?
        -(?P<width>\d+)[x×](?P<mult>\d+(?:\.\d+)?)
        (?:-(?P<head_dim>\d+))?$""",
    re.VERBOSE,
)


def looks_like_spec(text: str) -> bool:
    """True when ``text`` starts like a spec (so an error can explain the format, not list presets)."""
    return bool(re.match(r"^L\d", text.strip()))


def parse_spec_fields(spec: str) -> dict[str, Any]:
    """The config fields a spec string sets (no defaults filled in)."""
    text = spec.strip() if isinstance(spec, str) else spec
    match = _SPEC_RE.match(text) if isinstance(text, str) else None
    if match is None:
        raise UserError(
            f"malformed model spec {spec!r}; expected {SPEC_FORMAT}, e.g. {SPEC_EXAMPLES}"
        )
    width = int(match["width"])
    mult = float(match["mult"])
    d_ff = width * mult
    if d_ff != int(d_ff):
        raise UserError(
            f"model spec {spec!r}: width {width} x ffn multiple {match['mult']} = {d_ff:g} is not a "
            f"whole number of units; pick a multiple that gives an integer (e.g. {width}x4)"
        )
    fields: dict[str, Any] = {
        "n_layers": int(match["layers"]),
        "n_heads": int(match["heads"]),
        "d_model": width,
        "d_ff": int(d_ff),
    }
    if match["kv"] is not None:
        fields["n_kv_heads"] = int(match["kv"])
    if match["head_dim"] is not None:
        fields["head_dim"] = int(match["head_dim"])
    for key, value in fields.items():
        if value <= 0:
            raise UserError(f"model spec {spec!r}: {key} must be positive; expected {SPEC_FORMAT}")
    return fields


def parse_spec(spec: str, flavour: str | None = None, **overrides: Any):
    """A ``ModelConfig`` from a spec string, a flavour (default llama) and field overrides."""
    from tinylm.models.config import ModelConfig

    fields = parse_spec_fields(spec)
    override_flavour = overrides.pop("flavour", None)
    fields["flavour"] = flavour or override_flavour or "llama"
    fields.update(overrides)
    return ModelConfig.from_dict(fields)
