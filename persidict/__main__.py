"""``python -m persidict``: the command line (see persidict.cli)."""

from persidict.cli import main

if __name__ == "__main__":
    main()
