"""Equal-budget tuning of the distillation methods' options (``skd-bench tune``).

:mod:`.spec` reads and checks a tuning spec, :mod:`.search` runs one seeded Optuna TPE study per
method whose trials are student cells scored on the validation split, :mod:`.tuned` reads and
writes the tuned-options file a profile merges (``bench/tuned/<profile>.yaml``) and :mod:`.results`
writes the trial history. See docs/guide.md, "Tuning the methods' weights".
"""
