"""YAML that people write (recipes, sweep spaces): UTF-8, each key once, errors on one line.

PyYAML's `safe_load` lets a key given twice win silently (`lr: 1e-3` ... `lr: 3e-4` trains at the second)
and reports a non-UTF-8 file as a UnicodeDecodeError traceback; here both are a `UserError` naming the file,
the line and the fix.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tinylm.errors import UserError


class UniqueKeyLoader(yaml.SafeLoader):
    """safe_load, except that a key given twice in one mapping is an error (PyYAML lets the later win silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: construct_mapping names it
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {key!r} appears twice: keep one",
                    key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def yaml_problem(error: Exception) -> str:
    """What a YAML error says went wrong, and where, on one line."""
    mark = getattr(error, "problem_mark", None)
    problem = getattr(error, "problem", None) or (str(error).splitlines() or [type(error).__name__])[0]
    return problem + (f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else "")


def read_yaml_file(path: Path, what: str):
    """A YAML file a user wrote or may have edited (a recipe, a run's config.yaml): UTF-8 text, each key once.

    Anything else is one line naming the file: not text, not valid YAML, a key given twice.
    """
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{what} {path} is not UTF-8 text (byte {e.object[e.start]:#04x} at offset {e.start}): "
                        "save it as UTF-8 YAML") from None
    except OSError as e:
        raise UserError(f"cannot read {what} {path}: {e.strerror or e}") from None
    try:
        return load_yaml(text)
    except yaml.YAMLError as e:
        raise UserError(f"{what} {path} is not valid YAML: {yaml_problem(e)}; fix the file") from None


def load_yaml(text: str):
    """`yaml.safe_load`, refusing a key given twice in one mapping (raises yaml.YAMLError)."""
    return yaml.load(text, Loader=UniqueKeyLoader)
