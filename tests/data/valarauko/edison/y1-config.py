import imp
import os

import esutil

top = os.path.dirname(os.path.dirname(os.path.realpath(__file__)))
BuildJob = imp.load_source('BuildJob', os.path.join(top, 'BuildJob.py'))


def Y1A1Setup(run, balrog, tiles):
    dir = os.environ['Y1A1_DIR']
    tiles = esutil.io.read(os.path.join(dir, 'spt-y1a1-only-g70-grizY.fits'))['tilename']
    run['pos'] = os.path.join(dir, 'spt-y1a1-only-g70-grizY-pos-sphere')

    run['release'] = 'y1a1_coadd'
    run['db-columns'] = os.path.join(dir, 'y1a1_coadd_objects-columns.fits')
    balrog['pyconfig'] = os.path.join(dir, 'Y1-only.py')
    run['balrog'] = os.path.join(os.environ['LOCAL'], 'software', 'balrog.py')
    balrog['catalog'] = os.path.join(dir, 'CMC_allband_upsample.fits')
    balrog['slrdir'] = dir

    run['swarp-config'] = os.path.join(dir, '20150806_default.swarp')
    balrog['sexnnw'] = os.path.join(dir, '20150806_sex.nnw')
    balrog['sexconv'] = os.path.join(dir, '20150806_sex.conv')
    balrog['sexparam'] = os.path.join(dir, '20150806_sex.param_diskonly')
    balrog['nosimsexparam'] = os.path.join(dir, '20150806_sex.param_diskonly')
    balrog['sexconfig'] = os.path.join(dir, '20150806_sex.config')
    balrog['sexpath'] = os.path.join(dir, 'bin', 'sex')
    return run, balrog, tiles


def CustomConfig(run, balrog, db, tiles):
    run, balrog, tiles = Y1A1Setup(run, balrog, tiles)
    run = BuildJob.TrustEric(run, where='edison')
    run['shifter'] = 'esuchyta/balrog-docker:v1'

    tstart = 1
    tend = 4
    tiles = tiles[tstart:tend]

    run['nodes'] = 3
    run['ppn'] = 24
    run['walltime'] = '00:30:00'
    run['queue'] = 'debug'
    run['runnum'] = 0
    run['npersubjob'] = 1

    baseout = os.environ['SCRATCH']
    run['dbname'] = 'y1a1_etest'
    run['joblabel'] = f'{tstart}-{tend}'
    run['jobdir'] = os.path.join(baseout, 'BalrogJobs')
    run['outdir'] = os.path.join(baseout, 'BalrogScratch')

    balrog['ngal'] = 10
    run['downsample'] = balrog['ngal'] * run['ppn']
    run['fixwrapseed'] = 12345
    run['fixnoiseseed'] = 678

    run['DBoverwrite'] = True
    run['duplicate'] = 'replace'
    run['swarp'] = 'swarp'
    run['funpack'] = 'funpack'
    run['email'] = 'someone@example.org'
    return run, balrog, db, tiles
