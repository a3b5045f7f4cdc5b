"""The whole-sequence protocol: the exam's way of training, one whole sequence per epoch, for one model or
thousands. Beside ``run/`` (truncated BPTT over parallel streams, for any text).

``protocol.py`` declares the exam once (text, mapping, optimizer, learning rate, sizes, epochs) and
``data.py`` makes its vocabulary and one-hot pairs; ``fitting.py`` trains one model (:func:`fit`),
``many.py`` many at once on the compiled trainer or the stacked engine (:func:`fit_many`,
:func:`fit_stacked`), ``stacked.py`` holds the stacked engine's modules (K models as one batched torch
model). The exam's experiments (``exam/``) and the bench read from here; nothing here reads them.
"""
