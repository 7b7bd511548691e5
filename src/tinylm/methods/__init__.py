"""Training methods: one file per method, each a class registered by name.

A method receives the loop's events in recipe order and changes training only through the Run's
primitives (`reset_optimizer`, `restart_schedule`, `rebuild_model`, `reinit`, `set_trainable`,
`grow`, `snapshot`/`rollback`). See `base.py` for the events and `registry.py` for lookup.
"""

from tinylm.methods.base import Method
from tinylm.methods.registry import build_methods, register, registered

__all__ = ["Method", "build_methods", "register", "registered"]
