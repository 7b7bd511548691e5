"""Hyperparameter and structure search over tinylm runs (Optuna).

`structures` enumerates FORGETTER-style candidates and `space` reads hyperparameter spaces; both
need nothing beyond tinylm itself. The study machinery (`run_study`, `structure_sweep`,
`hyperparameter_sweep`, `stability_check`) needs the `sweep` extra (optuna) and is imported on
first use, so `from tinylm.sweep import StructureSpace` works without it.
"""

from tinylm.lazy_exports import lazy_exports
from tinylm.sweep.structures import Structure, StructureSpace, depth_balanced_order, parse_int_range

_LAZY = {"run_study": "study", "open_study": "study", "StudyResult": "study", "ranking": "study",
         "structure_sweep": "structure_search", "OrderedSampler": "structure_search",
         "plot_heads_vs_layers": "plots", "Param": "space", "load_space": "space", "parse_space": "space",
         "hyperparameter_sweep": "hparams", "stability_check": "stability"}

__all__ = ["Structure", "StructureSpace", "depth_balanced_order", "parse_int_range", *_LAZY]


__getattr__, _ = lazy_exports("tinylm.sweep", {name: f"tinylm.sweep.{module}" for name, module in _LAZY.items()})
