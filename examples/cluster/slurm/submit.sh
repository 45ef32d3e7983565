#!/bin/bash
# Submits the shards as a job array and the merge to run when all of them have succeeded.
# PROGRAM and RESULTS, when exported, reach both jobs (sbatch passes the environment on).
set -euo pipefail
cd "$(dirname "$0")/../../.."   # the dissect checkout: the jobs run from here
array=$(sbatch --parsable examples/cluster/slurm/shards.sbatch)
sbatch --dependency=afterok:"${array%%;*}" examples/cluster/slurm/merge.sbatch
