# Sourced by balrog-jobs (to find the programs) and at the top of every job file.
# Perlmutter: the AstrOmatic tools and balrog_runner from a conda environment.
module load python 2>/dev/null || true
if [ -n "${BALROG_CONDA_ENV:-}" ]; then
    conda activate "$BALROG_CONDA_ENV"
fi
export OMP_NUM_THREADS=1        # one core per realization; the pool is the parallelism
