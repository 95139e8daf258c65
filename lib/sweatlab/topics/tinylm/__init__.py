"""A tiny byte-level decoder-only transformer for lab 06, one module per job.

    corpus           the training text (Python's own help topics), its split, bytes <-> text
    model            the GPT-2-shaped model (Config, TinyLM), random speed models, greedy generation
    weights          the shipped trained weights: where they are, their SHA-256, loading them
    train            training on the corpus for a wall-clock budget; held-out loss
    numpy_decoder    one decode step written in numpy, with an attention function passed in
    quantized        linear layers that keep int8 / int4 weights (the quantizer passed in)
    onnx_export      one decode step with a KV cache as an ONNX graph, and greedy decoding with it
    tensor_parallel  the model split across processes (Megatron-style, gloo): the workers and their launcher

Two uses of the model:

* the *quality model*: about 1M parameters, context 256, trained on the help texts that ship with
  Python (``pydoc_data.topics``); the trained weights ship in ``sweatlab/assets`` and their SHA-256 is
  checked when they are loaded;
* the *speed model*: the same architecture with d_model >= 512 and random weights.

The command line (``python -m sweatlab.topics.tinylm train | tp | eval``) is in ``__main__``; the
tensor-parallel workers are started through it, one process per rank.

The functions lab 06 asks the learner to write (sampling, attention over a cache, the quantizers,
perplexity, the cost model) are not here: the course's answers are the lab's stand-ins
(``sweatlab.labs.lab06_tiny_lm``), and the modules here take them as arguments.
"""
