"""NERSC Edison (retired; SLURM, as the original runs used it): a job array over 4 tiles.

One array element per node, each running 1 tile; ``arraymax`` keeps at most 2 nodes busy.
An array needs a single group: len(tiles) == nodes * npersubjob (4 == 4 * 1).
"""

import os


def CustomConfig(run, balrog, db, tiles):
    base = os.environ.get("BALROG_CAMPAIGN_DIR", os.path.join(os.environ.get("SCRATCH", "~"), "balrog"))
    run["dbname"] = "sva1_edison"
    run["jobdir"] = os.path.join(base, "jobs")
    run["outdir"] = os.path.join(base, "output")
    run["pos"] = os.path.join(base, "positions")
    run["release"] = "y1a1_coadd"
    # balrog-inputs --release Y1A1_COADD --tiles <list> --db dessci -o $BALROG_CAMPAIGN_DIR/inputs.json
    run["fetch-manifest"] = os.path.join(base, "inputs.json")
    run["ngal"] = 1000
    run["nodes"] = 4                    # array elements (one node each)
    run["ppn"] = 24                     # Edison: 24 cores per node
    run["npersubjob"] = 1
    run["walltime"] = "08:00:00"
    run["queue"] = "regular"
    run["asarray"] = True
    run["arraymax"] = 2
    run["email"] = "someone@example.org"
    db["section"] = "dessci"
    tiles.extend(["DES0002+0209", "DES0005+0209", "DES0008+0209", "DES0011+0209"])
    return run, balrog, db, tiles
