import imp
import os

import esutil

top = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
BuildJob = imp.load_source('BuildJob', os.path.join(top, 'BuildJob.py'))


def Y1A1Setup(run, balrog, tiles):
    dir = os.environ['Y1A1_DIR']
    balrog['catalog'] = os.path.join(dir, 'CMC_allband_upsample.fits')
    balrog['slrdir'] = dir
    run['release'] = 'y1a1_coadd'
    run['db-columns'] = os.path.join(dir, 'y1a1_coadd_objects-columns.fits')
    run['swarp-config'] = os.path.join(dir, '20150806_default.swarp')
    balrog['sexnnw'] = os.path.join(dir, '20150806_sex.nnw')
    balrog['sexconv'] = os.path.join(dir, '20150806_sex.conv')
    balrog['sexparam'] = os.path.join(dir, '20150806_sex.param_diskonly')
    balrog['nosimsexparam'] = os.path.join(dir, '20150806_sex.param_diskonly')
    balrog['sexconfig'] = os.path.join(dir, '20150806_sex.config')
    balrog['catfitstype'] = 'ldac'

    tiles = esutil.io.read(os.path.join(dir, 'y1a1-sptw1-grizY.fits'))['tilename']
    run['pos'] = os.path.join(dir, 'y1a1-sptw1-grizY-tile-100000')
    return run, balrog, tiles


def CustomConfig(run, balrog, db, tiles):
    run, balrog, tiles = Y1A1Setup(run, balrog, tiles)
    run['email'] = 'someone@example.org'
    run = BuildJob.TrustEric(run, where='BNL')
    run['ppn'] = 8

    tstart = 0
    tend = 4
    tiles = tiles[tstart:tend]
    run['npersubjob'] = 2
    run['nodes'] = 2
    run['DBoverwrite'] = False
    run['duplicate'] = None

    run['dbname'] = 'y1a1_btest'
    run['joblabel'] = f'{tstart}-{tend}'
    run['outdir'] = os.path.join(os.environ['SCRATCH'], 'BalrogScratch')
    run['jobdir'] = os.path.join(os.environ['GLOBALDIR'], 'BalrogJobs')
    run['paralleldownload'] = False
    run['wget'] = 'wget'
    run['doDES'] = False
    run['intermediate-clean'] = True
    run['tile-clean'] = True
    run['bands'] = ['g', 'r', 'i', 'z', 'Y']

    balrog['ngal'] = 1000
    run['downsample'] = 2500
    run['runnum'] = 0

    db['db_host'] = 'leovip148.ncsa.uiuc.edu'
    db['service_name'] = 'dessci'
    return run, balrog, db, tiles
