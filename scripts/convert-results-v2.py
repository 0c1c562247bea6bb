#!/usr/bin/env python3
"""Converts power-sampling-eval result files from format 1 to format 2, in place.

Format 2 names the knobs as the knob table does (include/powersample/knobs.h), the one
vocabulary of every JSON the tools write: "params" holds the common knobs ("max_tokens",
"chains", ...) and a method's own under its group ("sps": {"top_k": 4}). Format 1 had
"max_new_tokens", "n_chains" and a flat "method_params".

    scripts/convert-results-v2.py DIR [DIR ...]

converts every per-problem record (*.json but summary.json) under each DIR and the "run" lines
of each summary.json there. Files already in format 2 are left as they are, so a rerun is
harmless. Every file is rewritten through a temporary file and rename, so an interrupted run
leaves each file whole. Exit 0 on success, 2 on a bad argument or an unreadable file.
"""
import json
import os
import sys

# method_params keys of format 1, per engine, -> (group, key) in format 2; None = a common knob.
METHOD_PARAMS = {
    "smc": {"particles": ("smc", "particles"), "ess_threshold": ("smc", "ess_threshold"),
            "resample_interval": ("smc", "resample_interval"), "alpha_ramp_tokens": ("smc", "alpha_ramp_tokens")},
    "sps": {k: ("sps", k) for k in ("candidates", "top_k", "rollouts", "lookahead", "proposal", "level",
                                    "last_candidates", "last_top_k")},
    "power-entropy": {"entropy_beta": ("power_entropy", "beta"), "entropy_floor": ("power_entropy", "floor"),
                      "early_rejection": (None, "early_rejection")},
    "power": {"early_rejection": (None, "early_rejection")},
}
PARAMS = {"max_new_tokens": "max_tokens", "n_chains": "chains"}


def convert_record(rec):
    """The record in format 2; None when it is in format 2 already."""
    if rec.get("version", 1) >= 2:
        return None
    params = {PARAMS.get(k, k): v for k, v in rec.get("params", {}).items()}
    mapping = METHOD_PARAMS.get(rec.get("engine", ""), {})
    for k, v in rec.pop("method_params", {}).items():
        if k not in mapping:
            raise ValueError(f"method_params.{k}: not a knob of engine {rec.get('engine')!r}")
        group, key = mapping[k]
        if group is None:
            params[key] = v
        else:
            params.setdefault(group, {})[key] = v
    rec["params"] = params
    rec["version"] = 2
    return rec


def convert_summary(summary):
    run = summary.get("run")
    if not isinstance(run, dict) or not isinstance(run.get("power-entropy"), str):
        return None
    text = run["power-entropy"].replace("entropy_beta ", "beta ").replace("entropy_floor ", "floor ")
    if text == run["power-entropy"]:
        return None
    run["power-entropy"] = text
    return summary


def rewrite(path, obj):
    tmp = path + ".convert.tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=2, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


def main(argv):
    if not argv:
        print(__doc__.strip().splitlines()[0], file=sys.stderr)
        print("usage: convert-results-v2.py DIR [DIR ...]", file=sys.stderr)
        return 2
    converted = kept = 0
    for top in argv:
        if not os.path.isdir(top):
            print(f"convert-results-v2.py: '{top}' is not a directory", file=sys.stderr)
            return 2
        for dirpath, _, files in os.walk(top):
            for name in sorted(files):
                if not name.endswith(".json"):
                    continue
                path = os.path.join(dirpath, name)
                try:
                    with open(path, encoding="utf-8") as f:
                        obj = json.load(f)
                    new = convert_summary(obj) if name == "summary.json" else convert_record(obj)
                except (OSError, ValueError) as e:
                    print(f"convert-results-v2.py: {path}: {e}", file=sys.stderr)
                    return 2
                if new is None:
                    kept += 1
                else:
                    rewrite(path, new)
                    converted += 1
    print(f"convert-results-v2.py: {converted} converted, {kept} unchanged (format 2 already)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
