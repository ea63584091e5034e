"""skd_core: models, feature taps, cross-net attention, losses, metrics and measurement for
Soft Knowledge Distillation with Multi-dimensional Cross-net Attention (arXiv 2501.09321)."""

__version__ = "0.1.0"
