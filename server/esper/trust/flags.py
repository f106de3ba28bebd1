"""The `esper serve` flags of kernel signing: where a compile worker's key is and whose kernels to trust.

`--trusted-signers FILE` names PEM public keys (one file may hold several);
without it a server that loads kernels loads none, since nothing is run unverified.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from esper.errors import InvalidArgument
from esper.home import default_help, state_dir
from esper.trust.kernel_signing import KernelSigner, TrustedSigners

SIGNING_KEY = "signing.key"


def add_trusted_signers_argument(parser: argparse.ArgumentParser, *, role: str) -> None:
    parser.add_argument(
        "--trusted-signers",
        type=Path,
        action="append",
        default=None,
        metavar="FILE",
        help=f"PEM public keys of the compile workers whose kernels {role} (repeatable; "
        "`esper up` writes DIR/pki/kernel-signers.pem); without it no kernel verifies",
    )


def trusted_signers(args: argparse.Namespace) -> TrustedSigners | None:
    """The keys `--trusted-signers` names, or None; a bad file is an error naming the flag."""
    if not args.trusted_signers:
        return None
    try:
        return TrustedSigners.from_files(args.trusted_signers)
    except ValueError as exc:
        raise InvalidArgument.for_field("--trusted-signers", str(exc)) from None


def add_signing_key_argument(parser: argparse.ArgumentParser, *, server: str) -> None:
    parser.add_argument(
        "--signing-key",
        type=Path,
        default=None,
        metavar="FILE",
        help=f"Ed25519 private key (PEM, owner-only) that signs every kernel (default: "
        f"{default_help(server, SIGNING_KEY)}, created with its public key beside it as .pub if missing)",
    )
    parser.set_defaults(signing_server=server)


def signing_key(args: argparse.Namespace) -> KernelSigner:
    path: Path = (args.signing_key or state_dir(args.signing_server) / SIGNING_KEY).expanduser()
    try:
        signer = KernelSigner.load_or_create(path)
    except (OSError, ValueError) as exc:
        raise InvalidArgument.for_field("--signing-key", str(exc)) from None
    public = path.with_suffix(".pub")
    if not public.exists():
        signer.write_public_key(public)
    return signer
