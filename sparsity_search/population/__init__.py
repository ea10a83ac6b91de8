"""Population training: K configs of one architecture trained at once as one vectorised network.

    from sparsity_search.population import population_key, train_population
    rows = train_population(cfgs)          # rows[k] == train(cfgs[k]) up to float rounding, or its exception
    rows = train_population(cfgs, pbt=sparsity_search.pbt.Rules(...))   # population-based training (``_pbt``)
"""

from ._net import PopulationNet
from ._train import PER_MEMBER, evaluate_population, population_key, resumable_epoch, train_population

__all__ = ["PER_MEMBER", "PopulationNet", "evaluate_population", "population_key", "resumable_epoch",
           "train_population"]
