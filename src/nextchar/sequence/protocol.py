"""The exam's definition, declared once: its text, its character mapping, its optimizer and learning
rate, and the sizes of its models. Everything that runs the exam's protocol (``fit``, the problems, the
claims, the sweep, the many engine, the bench, the help texts) reads these names.

This module imports nothing, so the model core may read it without importing the exam's experiments.
"""
TEXT = "hi?hello!!" * 100
"""The exam's data: 1000 characters, inputs ``TEXT[:-1]``, targets ``TEXT[1:]`` (999 steps)."""
MAPPING = {"!": 0, "?": 1, "h": 2, "i": 3, "e": 4, "l": 5, "o": 6}
"""Character -> index, in the exam's own (unsorted) order."""
VOCAB_SIZE = len(MAPPING)
OPTIMIZER = "adam"
LR = 0.1
"""torch.optim.Adam(..., lr=0.1) on every problem."""
HIDDEN_SIZE = {"rnn": 8, "lstm": 4, "gru": 8}
"""nn.RNN(7, 8) and nn.LSTM(7, 4); the GRU, which the exam does not use, as the RNN."""
MODULE_EPOCHS = 500
"""Problems 1 and 4 (the built-in sequence modules)."""
LOOP_EPOCHS = 100
"""Problems 2, 3, 5 and 6 (the cell loops)."""
DEFAULT_SEED = 0
"""Problems 1 and 4 set no seed in the exam; nextchar uses this one so runs are reproducible."""
