"""Ray Tune backend: one Tune experiment per study (private Ray APIs only in ``search._compat``).

Every Ray import of the package lives in this subpackage (``get_backend("ray")`` imports it lazily), and this
``__init__`` imports none of its modules. Imports go one way:

    trainable <- searcher, scheduler, folders, cluster <- backend
    limiter, scheduler, folders <- promotion <- backend

``trainable``: the function trainable around ``train(cfg, report)``; ``searcher``: OptunaSearch with the study's
sampler, baseline first; ``limiter``: the concurrency limit, paused trials not counted; ``scheduler``: MO-ASHA as a
Tune scheduler (stopping form), ``promotion``: its promotion form; ``folders``: trial folders read back as
records; ``cluster``: joining a user's cluster (token auth, the package as ``runtime_env``) and the line for
a sweep whose trials all failed; ``backend``: placement, connecting to Ray, the Tuner, and ``RayBackend``.
"""
