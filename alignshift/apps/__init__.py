"""The tooling around the method: command-line tools and the orchestration they need.

__all__: list = []  # the tools are imported by their full names

Nothing else in :mod:`alignshift` imports this package: the method (ops, nn, converter, models,
boxes, data, evaluation, inference) stays usable without it. What lives here:

- :mod:`.cli`: one convention for every tool's arguments and one-line errors;
- :mod:`.outputs`: which folders a tool may write into and what ``--force`` may delete;
- :mod:`.zoo`: the model index, snapshot downloads and conversion, ``alignshift-download``;
- :mod:`.deeplesion_download`: DeepLesion's 56 zips (Range resume, checksums, unpacking);
- :mod:`.reproduce`: the driver behind the paper's tables and their rendering;
- one module per command (``train``, ``test``, ``infer_volume``, ``eval_froc``, ...), each with
  ``main(argv)`` and ``cli()``, the console scripts of ``pyproject.toml`` and the ``tools/`` shims.

The commands that build a detector import MMDetection (through :mod:`mmdet_plugins`) inside the
functions that need it, so ``import alignshift.apps.<module>`` never imports a framework.
"""

__all__: list = []  # the tools are imported by their full names
