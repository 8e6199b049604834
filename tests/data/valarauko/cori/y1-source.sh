# what the Cori --source script did: load the software modules; desdm-config/y1a1 exported
# BALROG_CONFIG (the Y1A1 configuration directory); NERSC sets SCRATCH
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
export BALROG_CONFIG="${here}/y1a1"
export SCRATCH="${here}/cscratch"
umask u=wrx,g=rx,o=rx
