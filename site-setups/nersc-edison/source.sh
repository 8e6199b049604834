# Sourced by balrog-jobs (to find the programs) and at the top of every job file.
# Edison used a hand-built software stack; put its bin directory first.
if [ -n "${BALROG_STACK:-}" ]; then
    export PATH="$BALROG_STACK/bin:$PATH"
fi
export OMP_NUM_THREADS=1
