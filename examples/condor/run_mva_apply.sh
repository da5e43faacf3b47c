#!/usr/bin/env bash
# run_mva_apply.sh: score one input file with a trained mva run (one batch job).
#
#   run_mva_apply.sh RUN_DIR INPUT OUTPUT_DIR [mva apply options...]
#
# Runs
#   $MVA -q apply RUN_DIR INPUT --output OUTPUT_DIR/<basename of INPUT>.scored.root [options...]
# e.g.  run_mva_apply.sh run /data/nano_1.root scored --tree Events --keep run,event
# gives scored/nano_1.scored.root.
#
# Environment:
#   MVA    the mva executable (default: mva on PATH), e.g. /path/to/venv/bin/mva
#   FORCE  FORCE=1 re-scores an input whose output already exists; otherwise the job is skipped
#          with exit 0, so that resubmitted or released (held) jobs do not redo finished work.
#
# Exit codes (mva's own, passed on unchanged):
#   0    success (or skipped: the output already exists)
#   1    unexpected error (a bug or an environment problem: the message says which)
#   2    bad input: a missing or unreadable file, tree or branch, a bad option or run directory,
#        or too few arguments to this wrapper (resubmitting will not help; fix the input)
#   143  terminated by SIGTERM (the batch system ended the job: it may simply be retried)
#
# No partial output: mva writes the output under a temporary name and renames it only when it is
# complete, so an output file that exists is always a finished one; the wrapper itself writes
# nothing else.
set -euo pipefail

if [[ $# -lt 3 ]]; then
    echo "usage: $(basename "$0") RUN_DIR INPUT OUTPUT_DIR [mva apply options...]" >&2
    exit 2
fi

run_dir=$1
input=$2
output_dir=$3
shift 3

mva=${MVA:-mva}
name=$(basename "$input")
output="$output_dir/${name%.*}.scored.root"

if [[ -e "$output" && "${FORCE:-0}" != 1 ]]; then
    echo "run_mva_apply.sh: $output exists, skipping (FORCE=1 to redo)"
    exit 0
fi

mkdir -p "$output_dir"
echo "run_mva_apply.sh: $input -> $output (${HOSTNAME:-unknown host}, $(date -u +%Y-%m-%dT%H:%M:%SZ))"

# exec: mva becomes the job's process, so condor's SIGTERM reaches it directly (it then removes
# its temporary output and exits 143) and its exit code is the job's exit code.
exec "$mva" -q apply "$run_dir" "$input" --output "$output" "$@"
