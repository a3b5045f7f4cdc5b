"""The exam and its experiments: the protocol (``protocol``), the six problems (``problems``), the parity
report (``verify``), many seeds at once (``sweep``) and the five true/false claims (``claims``).

Nothing is imported here: the model core reads ``exam.protocol`` without pulling in the experiments.
"""
