"""Optuna backend: one multi-objective study in an Optuna storage, run by one or many worker processes.

The storage stays a plain Optuna storage (the stock ``optuna`` CLI and optuna-dashboard read it); everything this
toolkit adds lives in user attributes (``objective``). Imports go one way, and this ``__init__`` imports none of
the modules (reading a study through ``study`` and ``storage`` loads no torch):

    storage <- study, rungs          opening a study, reading trials back; MO-ASHA's rung records
    objective <- population          one trial; K trials trained as one network
    worker <- launcher <- backend    the loop until the budget is met; worker processes; the SearchBackend
"""
