"""`tinylm models [--json]`: the named presets, their parameter counts and embedding share."""

from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("models", help="list model presets with parameter counts", description=__doc__)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--recipes", action="store_true", help="list the bundled recipes instead")
    p.set_defaults(func=run)


def run(args) -> int:
    if args.recipes:
        return _recipes(args)
    from tinylm.models import count_parameters, list_presets

    rows = []
    for name, cfg, description in list_presets():
        counts = count_parameters(cfg)
        rows.append({"name": name, "kind": cfg.kind, "flavour": cfg.flavour, "spec": cfg.spec,
                     "parameters": counts["total"], "embedding": counts["embedding"],
                     "embedding_share": counts["embedding"] / counts["total"], "description": description})
    if args.json:
        print(json.dumps(rows, indent=1))
        return 0
    print(f"{'preset':<28} {'flavour':<7} {'spec':<26} {'params':>9} {'embed %':>8}  description")
    for r in rows:
        print(f"{r['name']:<28} {r['flavour']:<7} {r['spec'] or '-':<26} {r['parameters'] / 1e6:>8.1f}M "
              f"{100 * r['embedding_share']:>7.1f}%  {r['description']}")
    return 0


def _recipes(args) -> int:
    import yaml

    from tinylm.train.recipe import BUNDLED

    rows = []
    for path in sorted(BUNDLED.glob("*.yaml")):
        data = yaml.safe_load(path.read_text()) or {}
        rows.append({"name": path.stem, "description": data.get("description", "")})
    if args.json:
        print(json.dumps(rows, indent=1))
    else:
        for r in rows:
            print(f"{r['name']:<32} {r['description']}")
    return 0
