"""A tinylm model (or a mean-logit ensemble) as an lm-evaluation-harness ``LM``, so its tasks run on our
checkpoints without exporting them.

Why an adapter rather than exporting to a temporary transformers directory for lm-eval's ``HFLM``: an
ensemble has no transformers class to export to, and the adapter scores through tinylm's own batched
``Scorer`` (its device, bf16 and batch options), with no copy of the weights on disk. It is passed to
``lm_eval.simple_evaluate`` as an object, not registered under a name in lm-eval's global registry: the
registration would only serve lm-eval's own command line, which never imports tinylm.

What it must reproduce is ``HFLM``'s arithmetic, and the parity tests check it request by request:

* text is encoded the way ``HFLM.tok_encode`` encodes it: the tokenizer's own special-token template
  when lm-eval does not say (``add_special_tokens=None``; none for GPT-2-style byte-level tokenizers),
  none when a string already starts with the start token;
* lm-eval's ``TemplateLM.loglikelihood`` splits each (context, continuation) pair (an empty context
  becomes the start token: BOS when the tokenizer has one, else EOS, as ``HFLM.prefix_token_id``);
* ``(context + continuation)[-(max_len + 1):][:-1]`` is the input row, the continuation's tokens are
  the labels, and ``is_greedy`` is whether every one of them is the argmax of its logits;
* ``loglikelihood_rolling`` (perplexity tasks) uses lm-eval's own disjoint rolling windows.

Generation tasks (``generate_until``) are refused with one line: tinylm scores, it does not sample here.
"""

from __future__ import annotations

from tinylm.errors import UserError
from tinylm.optional import require

FEATURE = "tinylm eval --lm-eval"
_model_api = require("lm_eval.api.model", FEATURE)
_utils = require("lm_eval.utils", FEATURE)


class TinylmLM(_model_api.TemplateLM):
    """lm-eval's view of a tinylm ``Scorer`` (one decoder, or the mean logits of several) and its tokenizer."""

    backend = "causal"

    def __init__(self, scorer, tokenizer, special_ids: dict, name: str = "tinylm"):
        super().__init__()
        if scorer.kind != "decoder":
            raise UserError(f"{name} is an encoder; lm-evaluation-harness tasks score causal language models "
                            "(use --blimp/--hellaswag, which score encoders by pseudo-log-likelihood)")
        self.scorer = scorer
        self._tokenizer = tokenizer
        self.name = name
        if "eos" not in special_ids and "bos" not in special_ids:
            raise UserError(f"{name}'s tokenizer has neither a BOS nor an EOS token, which lm-eval conditions an "
                            "empty context on; use a tokenizer with <s> or <|endoftext|>")
        self._eot = int(special_ids.get("eos", special_ids.get("bos")))
        self._prefix = int(special_ids.get("bos", self._eot))
        self._prefix_text = tokenizer.id_to_token(self._prefix)

    # -------------------------------------------------------------- what TemplateLM asks for
    @property
    def eot_token_id(self) -> int:
        return self._eot

    @property
    def prefix_token_id(self) -> int:
        return self._prefix

    @property
    def max_length(self) -> int:
        return int(self.scorer.max_len)

    @property
    def tokenizer_name(self) -> str:
        return self.name

    def tok_encode(self, string: str, add_special_tokens: bool | None = None, **kwargs) -> list[int]:
        if add_special_tokens is None:  # HFLM: the tokenizer's template, unless the text starts with BOS already
            add_special_tokens = not string.startswith(self._prefix_text)
        return self._tokenizer.encode(string, add_special_tokens=add_special_tokens).ids

    def tok_decode(self, tokens, skip_special_tokens: bool = True) -> str:
        return self._tokenizer.decode(list(tokens), skip_special_tokens=skip_special_tokens)

    def _loglikelihood_tokens(self, requests, disable_tqdm: bool = False, **kwargs) -> list[tuple[float, bool]]:
        if not requests:
            return []
        contexts = [list(ctx) for _, ctx, _ in requests]
        continuations = [list(cont) for _, _, cont in requests]
        for (pair, _, cont) in requests:
            if not cont:
                raise UserError(f"lm-eval asked for the log-likelihood of an empty continuation after "
                                f"{str(pair[0])[-60:]!r}; the task's target is empty for some document")
        sums, greedy = self.scorer.causal_greedy(contexts, continuations)
        return [(float(s), bool(g)) for s, g in zip(sums, greedy)]

    def loglikelihood_rolling(self, requests, disable_tqdm: bool = False) -> list[float]:
        windows, owner = [], []
        for i, (string,) in enumerate(req.args for req in requests):
            for ctx, cont in map(_utils.make_disjoint_window, _utils.get_rolling_token_windows(
                    token_list=self.tok_encode(string), prefix_token=self.prefix_token_id,
                    max_seq_len=self.max_length, context_len=1)):
                windows.append((None, ctx, cont))
                owner.append(i)
        totals = [0.0] * len(requests)
        for i, (ll, _) in zip(owner, self._loglikelihood_tokens(windows)):
            totals[i] += ll
        return totals

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        raise UserError("this lm-eval task generates text (generate_until), which `tinylm eval --lm-eval` does not "
                        "do: choose log-likelihood tasks (multiple choice, perplexity), or export the model "
                        "(`tinylm export`) and run lm_eval --model hf on it")

    def get_model_info(self) -> dict:
        return {"model": self.name, "scorer": "tinylm", "precision": self.scorer.precision}
