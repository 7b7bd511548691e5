"""Reading (and sealing) run directories and checkpoints, beneath both training and evaluation.

Every file tinylm reads back from a run directory, a checkpoint or a transformers directory goes
through the readers here, so a corrupt, torn, foreign or pickled file ends in one line naming the
file and what to do (a ``UserError``), never in a traceback from json, yaml or safetensors.
Knows nothing of training.
"""
