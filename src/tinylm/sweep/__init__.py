"""Hyperparameter and structure search over tinylm runs (Optuna).

`structures` enumerates FORGETTER-style candidates and `space` reads hyperparameter spaces; both
need nothing beyond tinylm itself. The study machinery (`run_study`, `structure_sweep`,
`hyperparameter_sweep`, `stability_check`) needs the `sweep` extra (optuna) and is imported on
first use, so `from tinylm.sweep import StructureSpace` works without it.
"""

from tinylm.sweep.structures import Structure, StructureSpace, depth_balanced_order, parse_int_range

_LAZY = {"run_study": "study", "open_study": "study", "StudyResult": "study", "ranking": "study",
         "structure_sweep": "structure_search", "OrderedSampler": "structure_search",
         "plot_heads_vs_layers": "plots", "Param": "space", "load_space": "space", "parse_space": "space",
         "hyperparameter_sweep": "hparams", "stability_check": "stability"}

__all__ = ["Structure", "StructureSpace", "depth_balanced_order", "parse_int_range", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        import importlib
        return getattr(importlib.import_module(f"tinylm.sweep.{_LAZY[name]}"), name)
    raise AttributeError(f"module 'tinylm.sweep' has no attribute {name!r}")
