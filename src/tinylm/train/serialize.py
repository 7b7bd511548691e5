"""Moved to `tinylm.rundir.serialize` (reading and writing run directories, beneath training and
evaluation); these names stay importable from here."""

from tinylm.rundir.serialize import flatten, load_tree, save_tree, unflatten, write_json  # noqa: F401
