"""Sub-commands of ``skd-bench``; each module registers one with ``add_parser``."""
