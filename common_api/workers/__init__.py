"""One server, one component: what the workers of a gunicorn server share.

Everything goes through one state directory per server (see docs/multiworker.md). No
module here imports Flask.
"""
