"""BNL (wq): one YAML job over 4 nodes, one tile per node.

wq takes a single job per campaign: len(tiles) must equal nodes * npersubjob (4 == 4 * 1).
Submit with ``wq sub <jobdir>/<jobname>/<jobname>.yaml``.
"""

import os


def CustomConfig(run, balrog, db, tiles):
    base = os.environ.get("BALROG_CAMPAIGN_DIR", os.path.expanduser("~/balrog"))
    run["dbname"] = "stripe82_bnl"
    run["jobdir"] = os.path.join(base, "jobs")
    run["outdir"] = os.path.join(base, "output")
    run["pos"] = os.path.join(base, "positions")
    run["release"] = "y3a2_coadd"
    # balrog-inputs --release Y3A2_COADD --tiles <list> --db dessci -o ~/balrog/inputs.json
    run["fetch-manifest"] = os.path.join(base, "inputs.json")
    run["ngal"] = 1000
    run["nodes"] = 4
    run["ppn"] = 8
    run["npersubjob"] = 1
    db["section"] = "dessci"
    tiles.extend(["DES0002+0126", "DES0005+0126", "DES0008+0126", "DES0011+0126"])
    return run, balrog, db, tiles
