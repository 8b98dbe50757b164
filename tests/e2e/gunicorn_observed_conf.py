"""deploy/gunicorn.conf.py, unchanged, plus two observations for the shutdown test, as
files in LOYALTY_TEST_SIGNAL_DIR: `ready-<pid>` once a worker has loaded the app, and
`sigterm-<pid>` the moment SIGTERM reaches it. So the test knows every worker can take a
request before it sends them, and that every worker was told to stop before it lets the
requests in flight finish."""

import os
import signal
from pathlib import Path

_deploy = Path(__file__).resolve().parents[2] / "deploy" / "gunicorn.conf.py"
exec(compile(_deploy.read_text(encoding="utf-8"), str(_deploy), "exec"))  # noqa: S102

_deploy_post_worker_init = globals().get("post_worker_init")


def post_worker_init(worker):
    if _deploy_post_worker_init is not None:
        _deploy_post_worker_init(worker)
    directory = os.environ["LOYALTY_TEST_SIGNAL_DIR"]
    Path(directory, f"ready-{os.getpid()}").touch()
    stop = worker.handle_exit

    def noted(sig, frame):
        Path(directory, f"sigterm-{os.getpid()}").touch()
        stop(sig, frame)

    signal.signal(signal.SIGTERM, noted)
