"""A pyconfig with Valarauko's hook signatures (Balrog's args namespace, rules and the SLR shift)."""


def CustomArgs(parser):
    parser.add_argument("-slr", "--slrdir", help="Directory with SLR fits files", type=str, default=None)


def SimulationRules(args, rules, sampled, TruthCat):
    rules.x = sampled.x
    rules.y = sampled.y
    rules.magnitude = sampled.magnitude


def GalsimParams(args, gsparams, galaxies):
    gsparams.alias_threshold = 1e-3
