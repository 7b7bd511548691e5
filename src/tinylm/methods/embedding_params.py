"""Which parameters "the embeddings" are, for active forgetting and checkpoint surgery.

Recipes and the `tinylm surgery` command name them by role rather than by parameter name, so one
line works for every flavour:

    embeddings   the input token embeddings (with a tied output layer this *is* the output layer)
    output       the output layer when it is untied (`lm_head.weight`); nothing extra when tied
    positions    learned position embeddings (gpt2 flavour, encoders)
    <name>       any exact parameter name, e.g. `embed_token_types.weight`

Chen et al. (2023) and GAFF reset the token embeddings only; an untied output layer is therefore
left alone unless it is asked for.
"""

from __future__ import annotations

from tinylm.errors import UserError

ROLES = {
    "embeddings": ("embed_tokens.weight",),
    "output": ("lm_head.weight",),
    "positions": ("embed_positions.weight",),
}


def select_embedding_params(names: list[str], wanted, tied: bool, who: str = "forget") -> list[str]:
    """Resolve roles / exact names against a model's parameter names (in model order).

    `names` are the model's parameter names, `tied` whether its output layer shares the token
    embedding. Unknown roles, names and roles the model lacks are a `UserError` naming the fix.
    """
    if isinstance(wanted, str):
        wanted = [wanted]
    present = set(names)
    chosen: set[str] = set()
    for item in wanted:
        item = str(item)
        if item == "output" and tied:
            chosen.add("embed_tokens.weight")  # the tied output layer is the embedding table
            continue
        if item in ROLES:
            found = [n for n in ROLES[item] if n in present]
            if not found:
                raise UserError(f"{who}: this model has no {item} parameter ({ROLES[item][0]}): "
                                f"drop `{item}` from params")
            chosen.update(found)
        elif item in present:
            chosen.add(item)
        else:
            import difflib
            hint = difflib.get_close_matches(item, list(ROLES) + names, n=1)
            raise UserError(f"{who}: unknown parameter {item!r} in params: use embeddings, output, positions "
                            "or an exact parameter name" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
    return [n for n in names if n in chosen]
