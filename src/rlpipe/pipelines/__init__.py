"""The Kedro layer: every node function next to its wiring, in modules named for what they do.

``training`` (an algorithm's training pipeline ``<algo>``), ``evaluation`` (``<algo>_eval``), ``tuning``
(``<algo>_tune``), ``reports`` (plots, metrics and films of a run), ``demonstrations`` (recording and imitation),
``comparison`` (``compare``) and ``declared`` (the pipelines beyond each algorithm's standard three, declared by
name). ``rlpipe.pipeline_registry`` builds every pipeline from the algorithm registry (``rlpipe.rl.algorithm``);
nothing here is found by scanning folders. The nodes stay thin: each calls the library (``rlpipe.rl``).
"""
