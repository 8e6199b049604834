"""Stand-in for Valarauko's BuildJob.py: only the per-site preset the site configs call."""


def TrustEric(run, where='edison'):
    where = where.lower()
    run['paralleldownload'] = True
    run['allfail'] = True
    if where == 'edison':
        run['ppn'] = 24
        run['cores'] = 24
        run['asdependency'] = True
        run['queue'] = 'regular'
        run['stripe'] = 2
        run['duplicate'] = 'error'
    elif where == 'cori':
        run['ppn'] = 64
        run['cores'] = 64
        run['asdependency'] = True
        run['queue'] = 'regular'
        run['stripe'] = 2
        run['duplicate'] = 'error'
    elif where == 'bnl':
        run['ppn'] = 8
        run['cores'] = None
        run['asdependency'] = False
        run['queue'] = None
        run['stripe'] = None
    return run
