"""``clearinghouse participants ACTION``: the participants' credentials.

    clearinghouse participants keys                       a key pair for every participant
    clearinghouse participants keys --rotate PARTICIPANT  a newer key (the old one stays valid)
    clearinghouse participants keys --revoke KID          revoke a key from now on
    clearinghouse participants sync                       Kafka logins, client certificates,
                                                          key pairs and ACLs (idempotent)

One parser ``participants`` with sub-actions: add an action with `ACTIONS` (``sync``, the
Kafka users and ACLs, goes beside ``keys``). docs/security.md, "Signed submissions".
"""

from __future__ import annotations

import argparse
from collections.abc import Callable

from shared import participant_keys
from shared.config import load_settings

#: ``name -> (help, add_arguments, run)``; each action is ``participants <name>``.
Action = tuple[str, Callable[[argparse.ArgumentParser], None],
               Callable[[argparse.Namespace], int]]
ACTIONS: dict[str, Action] = {}


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    participants = sub.add_parser("participants", help="participants' keys and credentials",
                                  description=__doc__,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = participants.add_subparsers(dest="action", required=True)
    for name, (help_text, add_arguments, run) in ACTIONS.items():
        parser = actions.add_parser(name, help=help_text)
        add_arguments(parser)
        parser.set_defaults(run=run)


def _keys_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--rotate", metavar="PARTICIPANT",
                       help="give PARTICIPANT (hospital-<code>, agency-<code>) a new key")
    group.add_argument("--revoke", metavar="KID", help="revoke the key KID from now on")
    parser.add_argument("--reference-dir", help="reference data (default: the configured one)")


def _keys(args: argparse.Namespace) -> int:
    registry = participant_keys.registry_file()
    try:
        if args.revoke:
            key = participant_keys.revoke(args.revoke)
            print(f"revoked {key.kid} ({key.participant}) at {key.revoked_at} in {registry}")
            return 0
        if args.rotate:
            key = participant_keys.rotate(args.rotate)
            print(f"new key {key.kid} for {key.participant} in {registry}; earlier keys stay "
                  "valid until revoked")
            return 0
        wanted = participant_keys.participants(args.reference_dir
                                               or load_settings().reference_dir)
        made = participant_keys.ensure_key_pairs(wanted)
    except participant_keys.KeyFileError as exc:
        print(f"participants keys: {exc}")
        return 1
    print(f"{len(wanted)} participants, {len(made)} new key pairs; public keys in {registry}, "
          f"private keys in {participant_keys.secrets_dir()} (mode 0600)")
    return 0


ACTIONS["keys"] = ("generate missing key pairs, rotate or revoke a key", _keys_arguments, _keys)


def _sync_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", default=None,
                        help="topic namespace (default: CLEARINGHOUSE_TOPIC_PREFIX)")
    parser.add_argument("--group-prefix", default=None,
                        help="consumer-group prefix (default: CLEARINGHOUSE_GROUP_PREFIX)")


def _sync(args: argparse.Namespace) -> int:
    from infra import participants

    argv = []
    if args.prefix is not None:
        argv += ["--prefix", args.prefix]
    if args.group_prefix is not None:
        argv += ["--group-prefix", args.group_prefix]
    return participants.main(argv)


ACTIONS["sync"] = ("Kafka logins (SCRAM-SHA-512), client certificates, signing key pairs "
                   "and ACLs from the reference data", _sync_arguments, _sync)
