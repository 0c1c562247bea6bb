#!/usr/bin/env python3
"""Compares two power-sampling-eval runs of one method problem by problem.

    scripts/eval-compare.py runs/gsm8k-qwen05-er-solo-on runs/gsm8k-qwen05-er-solo-off [--method power]

For every problem finished in both runs: whether the sample texts are identical, whether the
grades agree, and the tokens each decoded. Written for early rejection's identity check (the same
seeds must give the same answers at fewer tokens), useful for any A/B of one method. Exit 0 when
every compared problem has identical texts, 1 when some differ, 2 on bad input.
"""
import argparse
import glob
import json
import os
import sys


def load(run_dir, method):
    folder = os.path.join(run_dir, method)
    if not os.path.isdir(folder):
        print(f"eval-compare.py: {folder}: no such results folder (run dir and --method?)", file=sys.stderr)
        sys.exit(2)
    results = {}
    for path in glob.glob(os.path.join(folder, "*.json")):
        with open(path, encoding="utf-8") as f:
            r = json.load(f)
        results[r["problem_id"]] = r
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("run_a")
    ap.add_argument("run_b")
    ap.add_argument("--method", default="power")
    ap.add_argument("--json", action="store_true", help="one JSON object instead of the table")
    args = ap.parse_args()
    a, b = load(args.run_a, args.method), load(args.run_b, args.method)
    common = sorted(set(a) & set(b), key=lambda p: (len(str(p)), str(p)))
    rows = []
    for pid in common:
        ra, rb = a[pid], b[pid]
        texts_a = [s["text"] for s in ra["samples"]]
        texts_b = [s["text"] for s in rb["samples"]]
        rows.append({
            "problem_id": pid,
            "same_text": texts_a == texts_b,
            "same_grade": ra["grade"].get("correct") == rb["grade"].get("correct"),
            "correct_a": ra["grade"].get("correct"),
            "correct_b": rb["grade"].get("correct"),
            "tokens_a": sum(s["n_tokens_decoded"] for s in ra["samples"]),
            "tokens_b": sum(s["n_tokens_decoded"] for s in rb["samples"]),
            "saved_a": sum(s.get("n_tokens_saved", 0) for s in ra["samples"]),
        })
    n_same = sum(r["same_text"] for r in rows)
    tokens_a = sum(r["tokens_a"] for r in rows)
    tokens_b = sum(r["tokens_b"] for r in rows)
    summary = {"compared": len(rows), "identical_text": n_same,
               "same_grade": sum(r["same_grade"] for r in rows),
               "tokens_a": tokens_a, "tokens_b": tokens_b,
               "only_in_a": len(set(a) - set(b)), "only_in_b": len(set(b) - set(a))}
    if args.json:
        print(json.dumps({"summary": summary, "problems": rows}, indent=1))
    else:
        print("| problem | same text | same grade | correct A/B | tokens A | tokens B | saved (A) |")
        print("| --- | --- | --- | --- | ---: | ---: | ---: |")
        for r in rows:
            print(f"| {r['problem_id']} | {'yes' if r['same_text'] else 'NO'} | {'yes' if r['same_grade'] else 'NO'} "
                  f"| {r['correct_a']}/{r['correct_b']} | {r['tokens_a']} | {r['tokens_b']} | {r['saved_a']} |")
        frac = f" ({1 - tokens_a / tokens_b:.1%} fewer in A)" if tokens_b else ""
        print(f"{summary['compared']} compared: {n_same} identical texts, {summary['same_grade']} same grades; "
              f"tokens {tokens_a} vs {tokens_b}{frac}")
    return 0 if n_same == len(rows) else 1


if __name__ == "__main__":
    sys.exit(main())
