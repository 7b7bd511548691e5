"""Finding and reading checkpoints: the one place a checkpoint directory is read back.

    RUN/checkpoints/
        latest                 the name of the checkpoint to resume from (one line)
        step-00000040/         model.safetensors, model_config.json, tokenizer files,
                               state.safetensors, state.json (written last: it seals the others
                               with their SHA-256)
        step-00000080/         a run sharded over N processes (train.parallel: fsdp): shards/ (each
                               rank's slices of the weights and AdamW moments, `tinylm.rundir.sharded`)
                               in place of model.safetensors and of the moments in state.safetensors

`latest_checkpoint` follows `latest` when it names a directory beside it; a dangling, garbage or
missing pointer falls back to the newest complete checkpoint found by scanning, a sealed
`.tmp-step-N` (fully written, not yet renamed) included, so a crash in the writer's window never
turns a resume into a silent restart. The readers verify each file against its recorded checksum
and turn a torn, foreign or flipped file into one line naming it and the fix (for a checkpoint the
pointer names: delete it, and the resume finds the one before), never a silent step back.
The tokenizer files are sealed but not held to it when read: putting another tokenizer.json into a
checkpoint is a documented move.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import torch

from tinylm.errors import UserError
from tinylm.rundir.files import read_json, read_safetensors
from tinylm.rundir.serialize import CHECKSUMS, load_tree, recorded_checksums, verify_file
from tinylm.rundir.sharded import SHARDS, read_shards, read_whole, shard_files

log = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
REQUIRED = ("model.safetensors", "model_config.json", "state.json", "state.safetensors")
SHARDED_OPTIMIZER = "__shards__"  # state.json's `optimizer` of a sharded checkpoint: {name: {key: [shape, dtype]}}
_NAME = re.compile(r"^(?P<hidden>\.(?:tmp|old)-)?step-(?P<step>\d+)(?P<rest>.*)$")


def checkpoint_fix(ckpt: Path) -> str:
    """What to do about a bad file in `ckpt`: inside a run, drop it and resume from the one before."""
    ckpt = Path(ckpt)
    if ckpt.parent.name == CHECKPOINTS:
        run = ckpt.parent.parent
        return (f"delete {ckpt} and resume from the previous checkpoint (`tinylm train --out {run} --resume` "
                "finds it)")
    return f"copy {ckpt} again from where it came from, or re-save it"


def _pointer(root: Path) -> Path | None:
    """The directory `latest` names, if it is a plain name of an existing directory beside it."""
    pointer = root / "latest"
    if not pointer.is_file():
        return None
    try:
        name = pointer.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError):
        return None
    if not name or "/" in name or "\\" in name or name.startswith(".") or len(name) > 255:
        return None
    path = root / name
    return path if path.is_dir() else None


def is_complete(ckpt: Path, verify: bool = False) -> bool:
    """Every file a resume needs is there and state.json reads back whole (it is written last);
    with `verify`, the seal is required and every sealed file matches it."""
    required = [n for n in REQUIRED if n != "model.safetensors"] if is_sharded(ckpt) else REQUIRED
    if not all((ckpt / name).is_file() for name in required):
        return False
    try:
        state = read_json(ckpt / "state.json", "")
        int(state["counters"]["step"])
        checksums = recorded_checksums(state)
        if any(not (ckpt / name).is_file() for name in checksums if name.startswith(f"{SHARDS}/")):
            return False  # a sealed shard is gone
        if verify:
            if not checksums:
                return False
            for name, digest in checksums.items():
                verify_file(ckpt / name, {Path(name).name: digest}, "")
    except (UserError, KeyError, TypeError, ValueError):
        return False
    return True


def _candidates(root: Path) -> list[tuple[int, int, Path]]:
    found = []
    for path in root.iterdir() if root.is_dir() else []:
        m = _NAME.match(path.name)
        if m and path.is_dir():
            # At one step: the renamed checkpoint, then one fully written but not yet renamed, then the one
            # being replaced; a surgery's `step-N-reset` only through `latest`.
            rank = 3 if not m["hidden"] and not m["rest"] else 2 if m["hidden"] == ".tmp-" else 1 if m["hidden"] else 0
            found.append((int(m["step"]), rank, path))
    return sorted(found, reverse=True)


def latest_checkpoint(out_dir: Path) -> Path | None:
    """The checkpoint to resume from (None when there is none).

    The one `latest` names, when it names a directory: if that one is damaged, its readers say so in one
    line (delete it and resume from the previous one), rather than a resume silently going back. When
    `latest` is missing, dangling or garbage (a crash between the writer's renames, a deleted folder),
    the newest complete checkpoint on disk, found by scanning.
    """
    root = Path(out_dir) / CHECKPOINTS
    named = _pointer(root)
    if named is not None:
        return named
    for _, rank, path in _candidates(root):
        if rank and is_complete(path, verify=path.name.startswith(".")):
            what = "is missing" if not (root / "latest").exists() else "names no checkpoint"
            log.warning("%s %s: using %s, the newest complete checkpoint on disk", root / "latest", what, path.name)
            return path
    return None


def holds_checkpoints(out_dir: Path) -> bool:
    """Whether a run directory shows signs of having had a checkpoint (a pointer, a renamed step folder);
    a `.tmp-step-N` alone is a first save cut short: the run never had one, and starts again."""
    root = Path(out_dir) / CHECKPOINTS
    return (root / "latest").exists() or any(not path.name.startswith(".") for _, _, path in _candidates(root))


def resolve_checkpoint(path) -> tuple[Path, Path | None]:
    """(checkpoint directory, run directory or None) for what a user names as RUN or CHECKPOINT: a checkpoint
    directory (its run is the folder above `checkpoints/`, if it sits in one) or a run directory (its latest)."""
    path = Path(path)
    if ((path / "model.safetensors").is_file() or is_sharded(path)) and (path / "model_config.json").is_file():
        run_dir = path.parent.parent if path.parent.name == CHECKPOINTS else None
        return path, run_dir
    if path.is_dir():
        ckpt = latest_checkpoint(path)
        if ckpt is not None:
            return ckpt, path
        if holds_checkpoints(path):
            raise UserError(f"{path / CHECKPOINTS} holds no complete checkpoint (each is missing or damaged): "
                            f"resume the run to write one (`tinylm train --out {path} --resume`), or give a "
                            "checkpoint directory")
        raise UserError(f"{path} holds no checkpoint: train it first (`tinylm train ... --out {path}`) "
                        "or give a checkpoint directory")
    raise UserError(f"{path} does not exist: give a run directory or a checkpoint directory")


def promote(ckpt: Path) -> Path:
    """Put a complete checkpoint found by scanning back where the writer would have: `step-N`, named by
    `latest` (a resume continues from it; the next saves and prunes see it)."""
    import os

    ckpt = Path(ckpt)
    m = _NAME.match(ckpt.name)
    root = ckpt.parent
    if m and m["hidden"]:
        final = root / f"step-{m['step']}{m['rest']}"
        if not final.exists():
            ckpt.rename(final)
            ckpt = final
    if _pointer(root) != ckpt:
        tmp = root / ".latest.tmp"
        tmp.write_text(ckpt.name + "\n")
        os.replace(tmp, root / "latest")
    return ckpt


def checkpoint_checksums(ckpt: Path) -> dict:
    """{file name: SHA-256} recorded in the checkpoint's state.json ({} for an unsealed checkpoint)."""
    path = Path(ckpt) / "state.json"
    return recorded_checksums(read_json(path, checkpoint_fix(ckpt))) if path.is_file() else {}


def read_model_config(ckpt: Path) -> dict:
    ckpt = Path(ckpt)
    fix = checkpoint_fix(ckpt)
    data = read_json(ckpt / "model_config.json", fix)  # read first: a torn file is named as torn
    verify_file(ckpt / "model_config.json", checkpoint_checksums(ckpt), fix)
    return data


def is_sharded(ckpt: Path) -> bool:
    """Written by a run sharded over several processes: its weights and moments are in `shards/`."""
    return (Path(ckpt) / SHARDS).is_dir()


def _verified_shards(ckpt: Path, fix: str) -> Path:
    """`ckpt/shards`, every shard file checked against the seal, and every sealed one present."""
    checksums = checkpoint_checksums(ckpt)
    sealed = {name for name in checksums if name.startswith(f"{SHARDS}/")}
    present = {f"{SHARDS}/{p.name}" for p in shard_files(ckpt / SHARDS)}
    if sealed - present:
        raise UserError(f"{ckpt / sorted(sealed - present)[0]} is missing: {fix}")
    for name in sorted(present):
        verify_file(ckpt / name, {Path(name).name: checksums[name]} if name in checksums else {}, fix)
    return ckpt / SHARDS


def load_weights(ckpt: Path, device: str = "cpu") -> dict[str, torch.Tensor]:
    ckpt = Path(ckpt)
    fix = checkpoint_fix(ckpt)
    if is_sharded(ckpt):  # whole, from every rank's slices
        return {k: v.to(device) for k, v in read_whole(_verified_shards(ckpt, fix), "model.", fix).items()}
    weights = read_safetensors(ckpt / "model.safetensors", fix, device)
    verify_file(ckpt / "model.safetensors", checkpoint_checksums(ckpt), fix)
    return weights


def check_weights_fit(model: torch.nn.Module, weights: dict, ckpt: Path) -> None:
    """The checkpoint's `weights` are exactly `model`'s tensors (names and shapes), or a UserError naming the first
    that is not: a model_config.json and a model.safetensors that do not belong together."""
    expected = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    found = {k: tuple(v.shape) for k, v in weights.items()}
    if expected == found:
        return
    if set(expected) != set(found):
        detail = f"missing {sorted(set(expected) - set(found))[:3]}, unexpected {sorted(set(found) - set(expected))[:3]}"
    else:
        name = next(k for k in expected if expected[k] != found[k])
        detail = f"{name} is {list(found[name])}, the config makes it {list(expected[name])}"
    raise UserError(f"{ckpt / 'model.safetensors'} does not match {ckpt / 'model_config.json'} ({detail}): "
                    f"{checkpoint_fix(ckpt)}")


def load_checkpoint_weights(model: torch.nn.Module, ckpt: Path) -> None:
    """Load the checkpoint's weights into `model` (built from its model_config.json: `tinylm.loading`), strictly."""
    weights = load_weights(ckpt)
    check_weights_fit(model, weights, ckpt)
    model.load_state_dict(weights)


def load_state(ckpt: Path, like=None) -> dict:
    """The run state in state.json + state.safetensors (counters, optimizer, RNG, methods), verified.

    A sharded checkpoint's AdamW moments come from its shards: into `like(name, key, shape, dtype)` (a tensor
    to fill, e.g. one sharded as its parameter, so each process reads only its part; None: a whole one), else
    whole tensors; either way the optimizer state is `{parameter name: {key: tensor}}` as a 1-process one's.
    """
    ckpt = Path(ckpt)
    fix = checkpoint_fix(ckpt)
    state = load_tree(ckpt, "state", fix)
    optimizer = state.get("optimizer") if isinstance(state, dict) else None
    if isinstance(optimizer, dict) and SHARDED_OPTIMIZER in optimizer:
        state["optimizer"] = _sharded_optimizer(ckpt, optimizer[SHARDED_OPTIMIZER], like, fix)
    return state


def _sharded_optimizer(ckpt: Path, layout, like, fix: str) -> dict[str, dict]:
    targets, where = {}, {}
    try:
        for name, entry in layout.items():
            for key, (shape, dtype_name) in entry.items():
                dtype = getattr(torch, str(dtype_name), None)
                if not isinstance(dtype, torch.dtype):
                    raise ValueError(f"dtype {dtype_name!r}")
                shape = tuple(int(n) for n in shape)
                target = like(name, key, shape, dtype) if like is not None else None
                targets[f"optimizer.{name}.{key}"] = target if target is not None else torch.empty(shape, dtype=dtype)
                where[f"optimizer.{name}.{key}"] = (name, key)
    except (AttributeError, TypeError, ValueError) as e:
        raise UserError(f"{ckpt / 'state.json'} lists its sharded optimizer state wrongly ({e}): {fix}") from e
    read_shards(_verified_shards(ckpt, fix), targets, fix)
    out: dict[str, dict] = {}
    for flat, (name, key) in where.items():
        out.setdefault(name, {})[key] = targets[flat]
    return out


def state_summary(ckpt: Path) -> dict:
    """state.json alone (no tensors): counters, snapshot table, and the like."""
    state = read_json(Path(ckpt) / "state.json", checkpoint_fix(ckpt))
    state.pop(CHECKSUMS, None)
    return state

