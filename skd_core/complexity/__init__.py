"""Complexity: parameters, MACs/FLOPs, throughput/latency and peak memory, with stated units.

Modules: :mod:`.params` (``count_params``), :mod:`.macs` (``count_macs`` -> ``MacReport``: MACs,
conv-only MACs, FLOPs = 2 x MACs, via fvcore), :mod:`.throughput` (``measure_throughput``,
``batch_sweep``), :mod:`.memory` (``inference_memory``, ``train_step_memory``), :mod:`.env`
(device, versions, threads, dtype settings). Imported one by one: :mod:`.macs` pulls in fvcore.
"""
