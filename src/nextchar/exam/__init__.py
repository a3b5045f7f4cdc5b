"""The exam and its experiments: the six problems (``problems``), the parity report (``verify``), many seeds
at once (``sweep``) and the five true/false claims (``claims``). The protocol they all follow, and its data,
live in ``sequence/`` (``sequence.protocol``, ``sequence.data``), which imports nothing from here.
"""
