"""``python3 -m waiter [-S PATH]``: print this client's version, then the
daemon's version and stats as key=value lines (exit 69 if none runs)."""

import argparse
import sys
from typing import List, Optional

from . import Client, Error, Unreachable, __version__


def main(argv: Optional[List[str]] = None) -> int:
    """Print versions and the daemon's stats; the exit status."""
    p = argparse.ArgumentParser(prog="python3 -m waiter", description=__doc__)
    p.add_argument("-S", "--socket", help="waiterd's socket (default as the CLI)")
    args = p.parse_args(argv)
    print(f"waiter-python {__version__}")
    try:
        with Client(args.socket) as w:
            print(f"waiterd {w.server_version} at {w.path}")
            for key, value in vars(w.stats()).items():
                print(f"{key}={value}")
    except Unreachable as e:
        print(f"waiter: {e}", file=sys.stderr)
        return 69
    except Error as e:
        print(f"waiter: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
