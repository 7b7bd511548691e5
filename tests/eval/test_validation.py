"""`evaluate`, the one validation loss: the training loop's evals and `tinylm eval --val` both compute it."""

import math

import torch
import torch.nn.functional as F

from tinylm.eval.validation import evaluate
from tinylm.models import build_model, resolve_model_config


def test_validation_loss_is_the_token_weighted_mean_over_scored_tokens():
    """Batches of unequal sizes and masked positions (-100) weigh by the tokens they score, not per batch,
    and the model is handed back in the mode it came in."""
    torch.manual_seed(0)
    model = build_model(resolve_model_config("L1-2-32x2", flavour="llama", vocab_size=50, max_seq_len=16)).train()
    ids = torch.randint(0, 50, (5, 9))
    labels = ids[:, 1:].clone()
    labels[0, :6] = -100  # a window scoring 2 tokens beside windows scoring 8
    labels[3, ::2] = -100
    batches = [{"input_ids": ids[:1, :-1], "labels": labels[:1]}, {"input_ids": ids[1:, :-1], "labels": labels[1:]}]
    result = evaluate(model, batches)
    model.eval()
    with torch.no_grad():
        logits = model(ids[:, :-1], None)
    expected = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100).item()
    assert math.isclose(result["val_loss"], expected, rel_tol=1e-6)
    assert math.isclose(result["val_ppl"], math.exp(expected), rel_tol=1e-6)
    model.train()
    evaluate(model, batches)
    assert model.training


def test_a_masked_lms_validation_loss_is_its_mean_over_the_masked_positions_alone(masked_lm_batch):
    """`evaluate` heads a masked LM at its labelled positions only (`Encoder.forward(at=)`): the same loss as the
    cross-entropy of the full logits over those positions."""
    b = masked_lm_batch
    got = evaluate(b.model, [{"input_ids": b.ids, "labels": b.labels}])["val_loss"]
    with torch.no_grad():
        want = F.cross_entropy(b.model(b.ids).flatten(0, 1), b.labels.flatten(), ignore_index=-100).item()
    assert b.head_rows == [int(b.masked.sum()), 3 * 24]  # evaluate's head, then the reference's
    assert abs(got - want) < 1e-5
