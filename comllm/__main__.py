"""``python -m comllm``: the same as the ``comllm`` command."""

from comllm.cli import main

main()
