"""Fail when an rpc of the contracts does not say who may call it (or names an unknown role).

Run by `make proto-check` after `buf generate`: every rpc carries
`option (esper.leyline.v1.allowed) = {roles: [...]}`, which the servers enforce.
"""

import sys

from esper.trust.access import leyline_methods, missing_declarations


def main() -> int:
    problems = missing_declarations()
    for problem in problems:
        print(f"proto-check: {problem}", file=sys.stderr)
    if problems:
        return 1
    print(f"proto-check: every one of {sum(1 for _ in leyline_methods())} rpcs declares who may call it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
