"""The one training loop, its Run and the Run's primitives, optimizer, schedules, checkpoints."""
