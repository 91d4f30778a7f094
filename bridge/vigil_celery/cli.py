"""`vigil-celery`: the bridge process. Every option also reads an environment variable."""

import argparse
import logging
import os
import signal
import sys
import threading

from . import __version__
from .client import AuthError, VigilClient, VigilError
from .commands import Commands
from .forwarder import DEFAULT_BATCH, DEFAULT_BUFFER, DEFAULT_FLUSH, Forwarder
from .receiver import Receiver, Seen
from .reporters import DEPTH_EVERY, PROGRESS_EVERY, STATS_EVERY, Reporters, loop

log = logging.getLogger("vigil_celery")

#: Exit status for a configuration Vigil refuses (bad URL or token): retrying is useless.
EXIT_CONFIG = 2


def parser():
    env = os.environ.get
    p = argparse.ArgumentParser(prog="vigil-celery", description=__doc__)
    p.add_argument("--app", default=env("VIGIL_CELERY_APP"),
                   help="Celery app to use, e.g. proj.celery:app (its broker and result backend) [VIGIL_CELERY_APP]")
    p.add_argument("--broker", default=env("CELERY_BROKER_URL"),
                   help="broker URL when no --app is given, e.g. redis://localhost:6379/0 or amqp://… [CELERY_BROKER_URL]")
    p.add_argument("--result-backend", default=env("CELERY_RESULT_BACKEND"),
                   help="result backend for progress, when no --app is given [CELERY_RESULT_BACKEND]")
    p.add_argument("--url", default=env("VIGIL_URL", "http://127.0.0.1:3000"), help="Vigil's URL [VIGIL_URL]")
    p.add_argument("--token", default=env("VIGIL_TOKEN"), help="a producer token (`vigil token --role producer`) [VIGIL_TOKEN]")
    p.add_argument("--buffer", type=int, default=int(env("VIGIL_BUFFER", DEFAULT_BUFFER)),
                   help=f"events held while Vigil is away; past it the oldest are dropped and counted ({DEFAULT_BUFFER}) [VIGIL_BUFFER]")
    p.add_argument("--batch", type=int, default=int(env("VIGIL_BATCH", DEFAULT_BATCH)),
                   help=f"events per request ({DEFAULT_BATCH}) [VIGIL_BATCH]")
    p.add_argument("--flush", type=float, default=float(env("VIGIL_FLUSH", DEFAULT_FLUSH)),
                   help=f"seconds a batch waits to fill ({DEFAULT_FLUSH}) [VIGIL_FLUSH]")
    p.add_argument("--queues", default=env("VIGIL_QUEUES", ""),
                   help="more queues to report depths of, comma-separated (those seen in task-sent events, "
                        "the app's and the workers' are reported anyway) [VIGIL_QUEUES]")
    p.add_argument("--depth-every", type=float, default=DEPTH_EVERY, help=f"seconds between queue depths ({DEPTH_EVERY})")
    p.add_argument("--stats-every", type=float, default=STATS_EVERY, help=f"seconds between worker stats ({STATS_EVERY})")
    p.add_argument("--progress-every", type=float, default=PROGRESS_EVERY,
                   help=f"seconds between progress polls of the result backend ({PROGRESS_EVERY})")
    p.add_argument("--no-commands", action="store_true", help="do not carry out Vigil's commands (for a second bridge)")
    p.add_argument("--state-file", default=env("VIGIL_STATE_FILE"),
                   help="where to keep the command feed's cursor, so commands sent while the bridge was down run on restart [VIGIL_STATE_FILE]")
    p.add_argument("--log-level", default=env("VIGIL_LOG_LEVEL", "INFO"), help="DEBUG, INFO, WARNING [VIGIL_LOG_LEVEL]")
    p.add_argument("--version", action="version", version=f"vigil-celery {__version__}")
    return p


def make_app(args):
    from celery import Celery
    if args.app:
        from celery.app.utils import find_app
        return find_app(args.app)
    if not args.broker:
        raise VigilError("give --app or --broker (or CELERY_BROKER_URL)")
    return Celery("vigil-celery", broker=args.broker, backend=args.result_backend)


def main(argv=None):
    args = parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s vigil-celery %(levelname)s %(message)s")
    try:
        client = VigilClient(args.url, args.token)
        client.check()
        app = make_app(args)
    except (VigilError, AuthError) as e:
        log.error("%s", e)
        return EXIT_CONFIG
    return run(app, client, args)


def run(app, client, args):
    stop = threading.Event()
    forwarder = Forwarder(client, args.buffer, args.batch, args.flush)
    seen = Seen(q for q in args.queues.split(",") if q)

    def on_event(event):
        seen.observe(event)
        forwarder.put(event)

    receiver = Receiver(app, on_event)
    reporters = Reporters(app, forwarder.put, seen)
    workers = [
        threading.Thread(target=forwarder.run, args=(stop,), name="forwarder"),
        threading.Thread(target=loop, args=(stop, args.stats_every, reporters.worker_stats, "worker stats"), daemon=True),
        threading.Thread(target=loop, args=(stop, args.depth_every, reporters.depths, "queue depths"), daemon=True),
        threading.Thread(target=loop, args=(stop, args.progress_every, reporters.progress, "progress"), daemon=True),
    ]
    if not args.no_commands:
        commands = Commands(app, client, args.state_file)
        workers.append(threading.Thread(target=commands.run, args=(stop,), name="commands", daemon=True))

    def shutdown(signum, _frame):
        log.info("signal %s: stopping (flushing %d buffered events)", signum, forwarder.pending())
        stop.set()
        receiver.stop()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    for t in workers:
        t.start()
    log.info("forwarding to %s", client.url)
    receiver.run(stop)
    workers[0].join()
    log.info("stopped: %d events received, %d forwarded, %d refused by Vigil, %d dropped",
             receiver.received, forwarder.forwarded, forwarder.refused, forwarder.dropped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
