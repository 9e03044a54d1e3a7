"""``transformers`` engine: a Hugging Face causal LM run in this process (CPU or one GPU).

Modules, one job each:

* ``params``: the request's sampling fields, checked (``temperature``, ``top_p``, ``seed``,
  ``stop``, ``max_tokens``) — no torch;
* ``detok``: incremental detokenisation, correct across multi-byte pieces — no torch;
* ``stops``: stop strings, holding back text that may be the start of one — no torch;
* ``sampling``: the next token of every row of a batch (greedy, temperature, top-p, seeds);
* ``batch``: one batch of sequences decoding together: left padding, attention mask, positions,
  one shared KV cache, rows joining and leaving;
* ``scheduler``: the generation thread: a bounded queue, admission, one step for every active
  sequence, results handed back to the event loop;
* ``weights``: loading the model, and replacing its weights in place from safetensors;
* ``engine``: the ``Engine`` protocol on top (docs/runtime.md, "Engines").

``transformers`` and ``torch`` are an optional extra (``pip install 'drivetrain[transformers]'``);
only ``engine``, ``batch``, ``sampling``, ``scheduler`` and ``weights`` import them.
"""
