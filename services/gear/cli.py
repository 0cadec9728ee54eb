"""``billing gear nftables``: run the reference gear on a Linux gateway."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from services.gear import adapter
from services.gear.settings import GearSettings
from services.runtime import logs
from services.runtime.settings import get_settings, get_topics


def cmd_nftables(args: argparse.Namespace) -> None:
    settings = get_settings(GearSettings)
    logs.configure("gear", settings.log_level)
    cfg = adapter.config_from(
        settings,
        table=args.table,
        notice4=args.notice,
        notice6=args.notice6,
        garden=args.garden.split(",") if args.garden else None,
        restrict_rate=args.restrict_rate,
    )
    gear = adapter.NftGear(cfg, adapter.nft_command(args.nft or settings.gear_nft_command))
    runner = adapter.GearRunner(
        settings,
        get_topics(),
        gear,
        args.gear_id or adapter.default_gear_id(),
        args.snapshot_url or settings.gear_snapshot_url,
        args.resync_interval or settings.gear_resync_interval,
        settings.gear_traffic_interval if args.traffic_interval is None else args.traffic_interval,
    )
    asyncio.run(runner.run())


def register(sub: Any) -> None:
    gear = sub.add_parser("gear", help="reference network gear").add_subparsers(
        dest="sub", required=True
    )
    p = gear.add_parser("nftables", help="keep a Linux gateway's nftables in step")
    p.add_argument("--gear-id", help="this gateway's name in reports (default: host name)")
    p.add_argument("--notice", help="notice server for IPv4 HTTP, ADDRESS:PORT")
    p.add_argument("--notice6", help="notice server for IPv6 HTTP, [ADDRESS]:PORT")
    p.add_argument("--garden", help="walled garden: addresses or prefixes, comma-separated")
    p.add_argument("--restrict-rate", help="e.g. '1 mbytes/second' (per address, each way)")
    p.add_argument("--table", help="nftables table (inet family), default billing")
    p.add_argument("--nft", help="nft command, e.g. 'ip netns exec gw nft'")
    p.add_argument("--snapshot-url", help="provisioning's GET /access")
    p.add_argument("--resync-interval", type=float, help="seconds between full rebuilds")
    p.add_argument(
        "--traffic-interval", type=float, help="seconds between traffic counter reports (0: off)"
    )
    p.set_defaults(fn=cmd_nftables)
