here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export Y1A1_DIR="${here}/y1a1"
export SCRATCH="${here}/scratch"
export GLOBALDIR="${here}/global"
