"""What a study is, as plain validated data: grid specs, scale profiles, ``KEY=VALUE`` overrides,
declared plugins, the tuned-options files and the code identity that cell ids hash.

Nothing here imports torch or the training stack at import time: a profile's model, task and
layout names and its tuned-options file are checked when a profile is first looked up.
"""
