"""gunicorn settings for `gunicorn --config deploy/gunicorn.conf.py` by hand.

The settings themselves ship inside the package, in service/gunicorn_conf.py, which is
what `loyalty serve` passes to gunicorn; this file runs that one, so both stay the same.
"""

import importlib.util

_spec = importlib.util.find_spec("service.gunicorn_conf")
if _spec is None or _spec.origin is None:
    raise RuntimeError("the service package is not installed (make install)")
with open(_spec.origin, encoding="utf-8") as _source:
    exec(compile(_source.read(), _spec.origin, "exec"))  # noqa: S102 - as gunicorn reads a config
