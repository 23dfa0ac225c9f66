"""Population training: K configurations, each with its own rows, trained as one batched network.

>>> from gradwise import TrainConfig, load_table, split_table
>>> from gradwise.training.population import Member, PopulationTrainer
>>> splits = split_table(load_table("builtin:iris"), seed=0)
>>> members = [Member(TrainConfig(epochs=3, hidden=8, lr=lr, seed=i), splits) for i, lr in enumerate((1e-3, 1e-2))]
>>> [len(r.history) for r in PopulationTrainer(members).run()]
[3, 3]
"""

from .trainer import Member, MemberResult, PopulationTrainer, can_batch, population_key

__all__ = ["Member", "MemberResult", "PopulationTrainer", "can_batch", "population_key"]
