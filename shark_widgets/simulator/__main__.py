"""Run the SharkAPI simulator in the foreground until Ctrl+C (or SIGTERM).

python -m shark_widgets.simulator --port 8000 --time-scale 0.5
"""

from __future__ import annotations

import argparse
import logging
import signal
import ssl
import sys
import threading
from decimal import Decimal, InvalidOperation
from types import FrameType

from .server import SharkSimulator


def _decimal(text: str) -> Decimal:
    try:
        amount = Decimal(text)
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount: {text!r}") from None
    if not amount.is_finite() or amount < 0:
        raise argparse.ArgumentTypeError(f"not an amount of dollars: {text!r}")
    return amount


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a positive number: {text!r}")
    return value


def _tls(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if cert is None:
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m shark_widgets.simulator",
        description="A local SharkAPI for demos and tests (no network, no charges).",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="API port (0: any)")
    parser.add_argument("--image-port", type=int, default=0, help="image port")
    parser.add_argument(
        "--time-scale",
        type=_positive,
        default=1.0,
        help="multiplies job durations",
    )
    parser.add_argument(
        "--balance", type=_decimal, default=Decimal("10.00"), help="wallet, dollars"
    )
    parser.add_argument(
        "--moderate",
        action="append",
        default=[],
        metavar="WORD",
        help="a word that gets prompts moderated (repeatable)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--tls-cert", metavar="PEM", help="serve the API over HTTPS with this cert"
    )
    parser.add_argument("--tls-key", metavar="PEM", help="the certificate's key")
    parser.add_argument("--verbose", action="store_true", help="log every request")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, serve until interrupted, and return the exit status."""
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(name)s %(levelname)s %(message)s",
    )
    done = threading.Event()

    def on_term(signum: int, frame: FrameType | None) -> None:
        done.set()

    signal.signal(signal.SIGTERM, on_term)
    simulator = SharkSimulator(
        time_scale=args.time_scale,
        host=args.host,
        port=args.port,
        image_port=args.image_port,
        moderation_words=args.moderate,
        seed=args.seed,
        tls=_tls(args.tls_cert, args.tls_key),
    )
    try:
        simulator.start()
    except OSError as error:
        print(f"cannot start the simulator: {error}", file=sys.stderr)
        return 1
    token = simulator.new_account(args.balance)
    print(f"SharkAPI simulator on {simulator.base_url}", flush=True)
    print(f"images on {simulator.image_base_url}", flush=True)
    print(f"token {token} (balance ${args.balance:.2f})", flush=True)
    print("point the client at it with:", flush=True)
    print(
        f"  export SHARKAPI_BASE_URL={simulator.base_url} SHARKAPI_TOKEN={token}",
        flush=True,
    )
    print("Press Ctrl+C to stop.", flush=True)
    try:
        while not done.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        simulator.stop()
    print("stopped", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
