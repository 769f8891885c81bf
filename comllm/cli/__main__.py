"""``python -m comllm.cli``: the same as the ``comllm`` command (used under ``accelerate launch``)."""

from comllm.cli import main

main()
