"""The losses a step computes, as plain functions of tensors: tinylm's cross-entropy (no float32
log-probabilities, its gradient written in one pass), distillation's soft targets with the KL term
fused into it, and the labelled positions' logits a masked LM computes alone (labelled.py). Below both
the loop (train/objective.py) and the methods (distill builds the soft targets), so a method needs
nothing of training to say what its loss is."""
