"""A laptop (local): two tiles, small realizations, both tiles at once, SQLite in outdir.

    balrog-jobs --config site-setups/laptop/config.py --source site-setups/laptop/source.sh \
                --scheduler local --submit
"""

import os


def CustomConfig(run, balrog, db, tiles):
    base = os.environ.get("BALROG_CAMPAIGN_DIR", os.path.expanduser("~/balrog-laptop"))
    run["dbname"] = "laptop"
    run["jobdir"] = os.path.join(base, "jobs")
    run["outdir"] = os.path.join(base, "output")
    run["pos"] = os.path.join(base, "positions")
    # synthetic tiles, one folder each: balrog-make-tile --tile DES0002+0209 --outdir <base>/archive/DES0002+0209
    run["fetch-root"] = "file://" + os.path.join(base, "archive")
    run["fetch-layout"] = "plain"
    run["ngal"] = 100                   # objects per realization
    run["realizations"] = 2             # per tile
    run["nodes"] = 2                    # local: subjobs at once
    run["ppn"] = 1                      # realizations at once per subjob
    run["npersubjob"] = 1
    # db["url"] stays None: sqlite:///<outdir>/laptop.sqlite
    tiles.extend(["DES0002+0209", "DES0005+0209"])
    return run, balrog, db, tiles
