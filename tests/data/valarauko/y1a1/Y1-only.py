"""A pyconfig with Valarauko's hook signatures (Balrog's args namespace and rule objects)."""


def CustomArgs(args):
    args.zeropoint = 30.0


def SimulationRules(args, rules, sampled, TruthCat):
    rules.x = sampled.x
    rules.y = sampled.y


def GalsimParams(args, gsparams, galaxies):
    gsparams.alias_threshold = 1e-3


def SextractorConfigs(args, config):
    config['CHECKIMAGE_TYPE'] = 'NONE'
