"""Engines side by side: the same as `nextchar bench`, runnable from a checkout.

    python bench/engines.py --quick --json bench-engines.json
"""
from nextchar.cli import main

if __name__ == "__main__":
    main(["bench", *__import__("sys").argv[1:]])
