#!/usr/bin/env bash
# Keeps an evaluation's finished per-problem results in the repository, compactly, so that the
# next session (or machine) resumes the run instead of restarting it.
#
#   scripts/eval-archive.sh save    RUN_DIR   packs RUN_DIR into docs/results/runs/NAME.tar.gz
#   scripts/eval-archive.sh restore NAME      unpacks it into runs/NAME (finished files kept)
#
# Then rerun the same power-sampling-eval command with --out runs/NAME: finished problems are
# skipped. The archive holds the per-problem JSON files, the timing lines and the summaries.
set -euo pipefail
cd "$(dirname "$0")/.."
archive_dir=docs/results/runs
case "${1:-}" in
  save)
    dir=${2:?usage: eval-archive.sh save RUN_DIR}
    [ -d "$dir" ] || { echo "eval-archive.sh: '$dir' is not a directory" >&2; exit 1; }
    name=$(basename "$dir")
    mkdir -p "$archive_dir"
    # Sorted names and fixed metadata: the same results give the same archive bytes.
    tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$(dirname "$dir")" -cf - "$name" |
      gzip -9n >"$archive_dir/$name.tar.gz.part"
    mv "$archive_dir/$name.tar.gz.part" "$archive_dir/$name.tar.gz"
    echo "eval-archive.sh: $archive_dir/$name.tar.gz ($(find "$dir" -name '*.json' ! -name 'summary.json' | wc -l) result files)" >&2
    ;;
  restore)
    name=${2:?usage: eval-archive.sh restore NAME}
    file="$archive_dir/$name.tar.gz"
    [ -f "$file" ] || { echo "eval-archive.sh: no archive '$file'" >&2; exit 1; }
    mkdir -p runs
    # Files already there (results finished here since the archive was made) are kept.
    tar -xzf "$file" -C runs --skip-old-files
    echo "eval-archive.sh: restored runs/$name" >&2
    ;;
  *)
    sed -n '2,9p' "$0" >&2
    exit 1
    ;;
esac
