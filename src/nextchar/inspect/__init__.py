"""``nextchar inspect``: see inside any model. ``trace.py`` records every layer's hidden state, cell state
and gates over a text, through the model's bit-equal hand-written twin; ``units.py`` finds the units that
track features of the text and measures how often each gate saturates; ``influence.py`` measures how
strongly each earlier character drives a prediction; ``inspection.py`` does all of it in one pass over a
text of any length, ``exports.py`` streams every position's arrays to disk (npz, JSON, LSTMVis) and
``figures.py`` draws the page's figures (the page itself is ``report/inspect_section.py``)."""
