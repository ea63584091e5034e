"""Performance: the regression gate of ``skd-bench perf`` (:mod:`bench.perf.gate`) and the
measurements behind ``results/perf.md`` (:mod:`bench.perf.report`)."""
