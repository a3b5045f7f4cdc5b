"""``nextchar inspect``: see inside any model. ``trace.py`` records every layer's hidden state, cell state
and gates over a text, through the model's bit-equal hand-written twin; ``units.py`` finds the units that
track features of the text and measures how often each gate saturates."""
