# what the Edison --source script did: set up software, export the config's directories
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export Y1A1_DIR="${here}/y1a1"
export LOCAL="${here}/local"
export SCRATCH="${here}/scratch"
export PATH="${Y1A1_DIR}/bin:${PATH}"
echo "set up for Y1A1"
