"""Names the results carry, each defined once: metric columns, trial attributes and the results folder's files.

Light on purpose (no imports): the trainer writes these names, the backends store them, the readers (tables,
report, CLI) look them up, and a rename here renames them everywhere.
"""

LAYER_PREFIX = "spikes_per_sample_"  # + a spiking layer's name: its spikes per sample (rows, histories, tables)
