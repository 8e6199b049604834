"""NERSC Perlmutter (SLURM): 8 Stripe-82 tiles on 2 CPU nodes, 2 tiles per node, 2 chained jobs.

Build the jobs on a login node::

    balrog-jobs --config site-setups/nersc-perlmutter/config.py \
                --source site-setups/nersc-perlmutter/source.sh --scheduler slurm
    bash $SCRATCH/balrog/jobs/stripe82_pm-try1/submit.sh

8 tiles / (nodes 2 * npersubjob 2) = 2 groups; ``asdependency`` runs them one after the other
(afterany), so a campaign never holds more than 2 nodes. ``ppn`` realizations of a tile run at
once per node: a Perlmutter CPU node has 128 cores; SExtractor/SWarp runs are single-threaded.
Memory: a realization of a 10000^2 tile peaks near 2.4 GB (benchmarks/full_tile.py) and the
runner plans 3.0 GB per worker, so 64 workers fit a node's 512 GB. Keep ``outdir`` on $SCRATCH:
the nodes' /tmp is memory (tmpfs), where each realization's 2.8 GB of scratch images count
too (5.8 GB planned per worker, about 68 workers a node).
"""

import os


def CustomConfig(run, balrog, db, tiles):
    base = os.environ.get("BALROG_CAMPAIGN_DIR", os.path.join(os.environ.get("SCRATCH", "~"), "balrog"))
    run["dbname"] = "stripe82_pm"
    run["joblabel"] = "try1"
    run["jobdir"] = os.path.join(base, "jobs")
    run["outdir"] = os.path.join(base, "output")
    run["pos"] = os.path.join(base, "positions")        # from balrog-positions
    run["release"] = "y3a2_coadd"
    # Where every tile's files are: resolved once from the release tag on a login node with
    #   balrog-inputs --release Y3A2_COADD --tiles <list> --db dessci -o $BALROG_CAMPAIGN_DIR/inputs.json
    # and fetched over HTTP from DESDM (~/.netrc) on the nodes, verified against its size/MD5.
    run["fetch-manifest"] = os.path.join(base, "inputs.json")
    run["ngal"] = 1000                                  # objects per realization
    run["nodes"] = 2
    run["ppn"] = 64                                     # realizations at once per node
    run["npersubjob"] = 2                               # tiles per node, in sequence
    run["walltime"] = "12:00:00"
    run["qos"] = "regular"                              # NERSC picks the queue by QOS, no partition
    run["constraint"] = "cpu"
    run["account"] = "des"
    run["asdependency"] = True
    db["section"] = "dessci"                            # credentials from ~/.desservices.ini on the node
    db["reader"] = "DES_READER"
    tiles.extend(["DES0002+0209", "DES0005+0209", "DES0008+0209", "DES0011+0209",
                  "DES0014+0209", "DES0002+0126", "DES0005+0126", "DES0008+0126"])
    return run, balrog, db, tiles
