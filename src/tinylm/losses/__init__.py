"""The losses a step computes, as plain functions of tensors: tinylm's cross-entropy (no float32
log-probabilities, its gradient written in one pass) and distillation's soft targets with the KL term
fused into it. Below both the loop (train/objective.py) and the methods (distill builds the soft
targets), so a method needs nothing of training to say what its loss is."""
