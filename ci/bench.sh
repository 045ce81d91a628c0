#!/usr/bin/env bash
# The main job: compiled txframe, pure txframe and Twisted side by side on the same
# workloads, in one process; prints the table the README shows.
source "$(dirname "${BASH_SOURCE[0]}")/setup.sh"
cd "$ROOT"
"$VENV/bin/python" benchmarks/compare.py --check-targets "$@"
