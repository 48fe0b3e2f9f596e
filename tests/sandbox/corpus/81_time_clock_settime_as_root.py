# ruff: noqa - a hostile script, kept as written
# threat: 1 reach the operating system
# technique: time.clock_settime_ns(CLOCK_REALTIME, now) of the allowed time module sets the machine's clock
# why: a facade exports every public function of an allowed module, privileged ones included, and the child keeps root
# escapes: runner a75ee23, wide allowlist
import time
time.clock_settime_ns(time.CLOCK_REALTIME, time.time_ns())  # to now: no harm done
result = "ESCAPED the system clock was set by a script"
