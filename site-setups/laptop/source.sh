# Sourced by balrog-jobs (to find the programs) and by each local subjob.
# Debian/Ubuntu: apt install source-extractor swarp psfex libcfitsio-bin.
# Activate the project's venv when it exists, so balrog-run is on PATH.
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
if [ -f "$here/../../.venv/bin/activate" ]; then
    . "$here/../../.venv/bin/activate"
fi
export OMP_NUM_THREADS=1
