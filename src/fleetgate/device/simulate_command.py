"""The command line of ``fleetgate simulate`` (:mod:`fleetgate.device.simulator`)."""

from __future__ import annotations

import argparse
import asyncio
import time
from pathlib import Path

from fleetgate.device.enrolment import load_stack
from fleetgate.device.simulator import Simulation, SimulationConfig

__all__ = ["add_parser", "simulate_command"]

#: Devices simulated when neither --devices nor --gateways is given.
DEFAULT_DEVICES = 10
DEFAULT_CHILDREN = 10


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``simulate`` sub-command to ``fleetgate``'s command line."""
    simulate = commands.add_parser(
        "simulate",
        help="simulate certificate devices and gateways that carry out operations",
        description="Connect simulated devices, and gateways with children, to a running"
        " stack (certificates from a CA the simulator creates and trusts through the REST"
        " API); they declare themselves (the gateways their children too) and carry out"
        " firmware, software and configuration operations. Runs until Ctrl-C or SIGTERM,"
        " printing a summary every few seconds.",
    )
    simulate.add_argument(
        "--stack",
        type=Path,
        default=Path(".fleetgate/stack.json"),
        help="stack.json of a running `fleetgate up` (.fleetgate/stack.json)",
    )
    simulate.add_argument(
        "--devices",
        type=int,
        help=f"how many devices ({DEFAULT_DEVICES}; 0 when --gateways is given)",
    )
    simulate.add_argument(
        "--gateways", type=int, default=0, help="how many gateways, each with children (0)"
    )
    simulate.add_argument(
        "--children",
        type=int,
        help=f"children per gateway ({DEFAULT_CHILDREN} when --gateways is given)",
    )
    simulate.add_argument(
        "--prefix",
        default="sim",
        help="ids are <prefix>-0001 …, gateways <prefix>-gw-0001 …, their children"
        " <prefix>-gw-0001-c-0001 … (sim)",
    )
    simulate.add_argument(
        "--delay", type=float, default=0.5, help="seconds an operation takes, jittered (0.5)"
    )
    simulate.add_argument(
        "--failure-rate", type=float, default=0.0, help="probability an operation fails (0)"
    )
    simulate.add_argument(
        "--state-dir", type=Path, help="CA and device certificates (<dir of stack.json>/simulator)"
    )
    simulate.add_argument(
        "--connect-parallel", type=int, default=8, help="TLS handshakes at once (8)"
    )
    simulate.add_argument(
        "--summary-interval", type=float, default=5.0, help="seconds between summaries (5)"
    )


def config_from(args: argparse.Namespace) -> SimulationConfig:
    """The simulation the command line asks for (ConfigurationError if it cannot be)."""
    stack_file: Path = args.stack.resolve()
    gateways: int = args.gateways
    devices = args.devices if args.devices is not None else (0 if gateways else DEFAULT_DEVICES)
    children = args.children
    if children is None:
        children = DEFAULT_CHILDREN if gateways else 0
    return SimulationConfig(
        stack=load_stack(stack_file),
        devices=devices,
        gateways=gateways,
        children=children,
        state_dir=args.state_dir or stack_file.parent / "simulator",
        prefix=args.prefix,
        delay=args.delay,
        failure_rate=args.failure_rate,
        connect_parallel=args.connect_parallel,
    )


async def simulate_command(args: argparse.Namespace) -> None:
    """``fleetgate simulate``: runs until cancelled (SIGINT/SIGTERM)."""
    config = config_from(args)
    simulation = Simulation(config)
    started = time.monotonic()

    async def announce_ready() -> None:
        await simulation.ready.wait()
        elapsed = time.monotonic() - started
        what = [f"{config.devices} devices"] * bool(config.devices)
        if config.gateways:
            what.append(f"{config.gateways} gateways with {config.children} children each")
        print(f"simulate: all {' and '.join(what)} declared in {elapsed:.1f} s", flush=True)

    async def print_summaries() -> None:
        while True:
            await asyncio.sleep(args.summary_interval)
            print(f"simulate: {simulation.summary()}", flush=True)

    async with asyncio.TaskGroup() as tasks:
        tasks.create_task(simulation.run())
        tasks.create_task(announce_ready())
        tasks.create_task(print_summaries())
