"""``nextchar export``: a checkpoint anywhere else. ``html.py`` writes one self-contained page that runs the
model in the browser (``page.html.j2``: its weights and a JavaScript forward pass); ``onnx_graph.py`` the
model as one ONNX graph of ONNX's own recurrent operators."""
