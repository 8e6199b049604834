# Sourced by balrog-jobs (to find the programs) and at the top of the wq command.
# BNL: the DES software stack via eups, then the AstrOmatic tools.
if [ -n "${EUPS_DIR:-}" ]; then
    setup sextractor 2>/dev/null || true
    setup swarp 2>/dev/null || true
fi
export OMP_NUM_THREADS=1
