"""Complexity: parameters, MACs/FLOPs, throughput/latency and peak memory, with stated units."""
