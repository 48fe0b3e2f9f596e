"""The sandbox policy table: every allow and deny decision lives here.

This module is imported both by the worker and by the script's child process,
so it only imports the standard library. Nothing here executes script code.

Reading guide:

* :data:`SAFE_BUILTINS` - names a script can call without importing anything.
* :data:`DATA_ATTRS` - attribute reads allowed on plain data, by exact type.
* :data:`VETTED_TYPES` - classes of allowed modules a script may use, with the
  attributes it may read on them and on their instances.
* :data:`NEVER_IMPORTABLE` / :data:`DENIED_EXPORTS` - modules and module members
  that are refused even when an operator allows the module.
* :data:`APP_ATTRIBUTES` - what ``app`` exposes to a script.
* :data:`NEVER_HOST` - packages that are never host code (frameworks, the standard
  library); host code is the app's own package plus COMMON_API_SCRIPT_HOST_PACKAGES.
* :data:`WRITABLE_SCALARS` - what a script may assign to an attribute of a host object.
* Limits of the worker <-> child channel.
"""

from __future__ import annotations

import sys

# --------------------------------------------------------------------------------------
# Builtins
# --------------------------------------------------------------------------------------

#: Plain builtins a script may call. Everything not listed is absent: notably type,
#: object, super, vars, dir, globals, locals, eval, exec, compile, open, input,
#: breakpoint, help, memoryview, classmethod, staticmethod, property, __import__
#: (replaced by a guarded import) and getattr/setattr/hasattr/delattr (replaced by
#: guarded versions in :mod:`common_api.sandbox.guards`).
SAFE_BUILTINS: frozenset[str] = frozenset(
    {
        "abs", "all", "any", "ascii", "bin", "bool", "bytearray", "bytes", "callable",
        "chr", "complex", "dict", "divmod", "enumerate", "filter", "float", "format",
        "frozenset", "hash", "hex", "id", "int", "isinstance", "issubclass", "iter",
        "len", "list", "map", "max", "min", "next", "oct", "ord", "pow", "range",
        "repr", "reversed", "round", "set", "slice", "sorted", "str", "sum", "tuple",
        "zip", "True", "False", "None", "Ellipsis", "NotImplemented",
    }
)

#: Exception classes a script can raise and catch by name.
SAFE_EXCEPTIONS: frozenset[str] = frozenset(
    {
        "ArithmeticError", "AssertionError", "AttributeError", "BaseException",
        "Exception", "FloatingPointError", "ImportError", "IndexError", "KeyError",
        "LookupError", "MemoryError", "ModuleNotFoundError", "NameError",
        "NotImplementedError", "OverflowError", "RecursionError", "RuntimeError",
        "StopIteration", "TimeoutError", "TypeError", "UnboundLocalError",
        "UnicodeDecodeError", "UnicodeEncodeError", "UnicodeError", "ValueError",
        "ZeroDivisionError",
    }
)

#: Only attribute of an exception object a script may read.
EXCEPTION_ATTRS: frozenset[str] = frozenset({"args"})

#: Dunder methods of exception classes a script may read (``Exception.__init__``).
EXCEPTION_DUNDERS: frozenset[str] = frozenset({"__init__", "__str__", "__repr__"})

#: Dunder methods a script's class may define (they run in the child only) and read
#: on its own classes and instances (``Base.__init__(self)``, there is no super()).
SCRIPT_DUNDERS: frozenset[str] = frozenset(
    {
        "__init__", "__repr__", "__str__", "__len__", "__iter__", "__next__",
        "__contains__", "__getitem__", "__eq__", "__ne__", "__lt__", "__le__",
        "__gt__", "__ge__", "__hash__", "__bool__", "__add__", "__sub__", "__mul__",
        "__enter__", "__exit__",
    }
)

# --------------------------------------------------------------------------------------
# Attribute reads on plain data, by exact type (subclasses get nothing)
# --------------------------------------------------------------------------------------

_STR = frozenset(
    {
        "capitalize", "casefold", "center", "count", "encode", "endswith", "expandtabs",
        "find", "index", "isalnum", "isalpha", "isascii", "isdecimal", "isdigit",
        "isidentifier", "islower", "isnumeric", "isprintable", "isspace", "istitle",
        "isupper", "join", "ljust", "lower", "lstrip", "maketrans", "partition",
        "removeprefix", "removesuffix", "replace", "rfind", "rindex", "rjust",
        "rpartition", "rsplit", "rstrip", "split", "splitlines", "startswith", "strip",
        "swapcase", "title", "translate", "upper", "zfill",
    }
)  # deliberately without format / format_map (field lookups reach attributes)
_BYTES = (_STR - {"encode", "casefold", "format", "isdecimal", "isidentifier",
                  "isnumeric", "isprintable"}) | {"decode", "hex", "fromhex"}
_BYTEARRAY = _BYTES | {
    "append", "clear", "copy", "extend", "insert", "pop", "remove", "reverse",
}
_INT = frozenset(
    {
        "bit_count", "bit_length", "to_bytes", "from_bytes", "as_integer_ratio",
        "conjugate", "real", "imag", "numerator", "denominator", "is_integer",
    }
)
_FLOAT = frozenset(
    {"as_integer_ratio", "conjugate", "fromhex", "hex", "is_integer", "real", "imag"}
)
_LIST = frozenset(
    {"append", "clear", "copy", "count", "extend", "index", "insert", "pop", "remove",
     "reverse", "sort"}
)
_DICT = frozenset(
    {"clear", "copy", "fromkeys", "get", "items", "keys", "pop", "popitem",
     "setdefault", "update", "values"}
)
_FROZENSET = frozenset(
    {"copy", "difference", "intersection", "isdisjoint", "issubset", "issuperset",
     "symmetric_difference", "union"}
)
_SET = _FROZENSET | {
    "add", "clear", "difference_update", "discard", "intersection_update", "pop",
    "remove", "symmetric_difference_update", "update",
}

#: Exact type -> attribute names a script may read (on instances and on the type).
DATA_ATTRS: dict[type, frozenset[str]] = {
    str: _STR,
    bytes: _BYTES,
    bytearray: _BYTEARRAY,
    int: _INT,
    bool: _INT,
    float: _FLOAT,
    complex: frozenset({"conjugate", "real", "imag"}),
    list: _LIST,
    tuple: frozenset({"count", "index"}),
    dict: _DICT,
    set: _SET,
    frozenset: _FROZENSET,
    range: frozenset({"start", "stop", "step", "count", "index"}),
    slice: frozenset({"start", "stop", "step", "indices"}),
    type({}.keys()): frozenset({"isdisjoint"}),
    type({}.items()): frozenset({"isdisjoint"}),
    type({}.values()): frozenset(),
}

#: Generator objects of script functions: no gi_frame / gi_code.
GENERATOR_ATTRS: frozenset[str] = frozenset({"send", "throw", "close"})

#: Types whose objects a script may mutate through item/attribute stores.
WRITABLE_DATA: frozenset[type] = frozenset({list, dict, set, bytearray})

# --------------------------------------------------------------------------------------
# Imports
# --------------------------------------------------------------------------------------

#: Never importable, whatever COMMON_API_SCRIPT_ALLOWED_IMPORTS says: each of these
#: reaches the operating system, the interpreter's internals or arbitrary code.
NEVER_IMPORTABLE: frozenset[str] = frozenset(
    {
        "asyncio", "bdb", "builtins", "code", "codecs", "codeop", "concurrent",
        "ctypes", "dataclasses", "dbm", "fcntl", "fileinput", "gc", "glob", "grp",
        "gzip", "bz2", "lzma", "imp", "importlib", "inspect", "io", "linecache",
        "logging", "marshal", "mmap", "multiprocessing", "os", "pathlib", "pdb",
        "pickle", "pickletools", "pkgutil", "platform", "posix", "pty", "pwd",
        "resource", "runpy", "select", "selectors", "shelve", "shutil", "signal",
        "site", "socket", "socketserver", "sqlite3", "ssl", "subprocess",
        "sys", "sysconfig", "tarfile", "tempfile", "threading", "tokenize",
        "traceback", "types", "typing", "urllib", "http", "webbrowser", "xml",
        "zipfile", "zipimport", "_thread", "_io", "_pickle", "_ctypes", "nt",
        "faulthandler", "tracemalloc", "ast", "dis", "copyreg", "weakref", "abc",
        "pydoc", "configparser", "netrc", "mailbox",
        "ftplib", "smtplib", "imaplib", "poplib", "telnetlib", "xmlrpc", "email",
        "wsgiref", "venv", "ensurepip", "zoneinfo", "locale", "gettext", "warnings",
        "contextvars", "atexit", "cProfile", "profile", "timeit", "trace",
    }
)

#: Public members of allowed modules that are never exported: they read files,
#: start processes or resolve attribute paths by name.
DENIED_EXPORTS: dict[str, frozenset[str]] = {
    "uuid": frozenset({"getnode", "uuid1", "uuid6"}),
    "time": frozenset({"tzset"}),
    "operator": frozenset({"attrgetter", "methodcaller"}),
    "functools": frozenset(
        {"update_wrapper", "wraps", "singledispatch", "singledispatchmethod",
         "partialmethod", "cached_property"}
    ),
}

#: Classes of allowed modules a script may use: (module, qualified name) -> the
#: attributes readable on the class and its instances. Any other class of an
#: allowed module is not exported (except exception classes, which can only be
#: raised and caught).
VETTED_TYPES: dict[tuple[str, str], frozenset[str]] = {
    ("datetime", "date"): frozenset(
        {"year", "month", "day", "today", "fromisoformat", "fromordinal",
         "fromtimestamp", "isoformat", "strftime", "weekday", "isoweekday",
         "isocalendar", "replace", "toordinal", "ctime", "min", "max", "resolution"}
    ),
    ("datetime", "datetime"): frozenset(
        {"year", "month", "day", "hour", "minute", "second", "microsecond", "tzinfo",
         "fold", "now", "utcnow", "today", "fromisoformat", "fromtimestamp",
         "utcfromtimestamp", "combine", "strptime", "isoformat", "strftime",
         "timestamp", "date", "time", "timetz", "astimezone", "utcoffset", "tzname",
         "replace", "weekday", "isoweekday", "isocalendar", "toordinal", "ctime",
         "min", "max", "resolution"}
    ),
    ("datetime", "time"): frozenset(
        {"hour", "minute", "second", "microsecond", "tzinfo", "fold", "isoformat",
         "strftime", "replace", "utcoffset", "tzname", "fromisoformat", "min", "max"}
    ),
    ("datetime", "timedelta"): frozenset(
        {"days", "seconds", "microseconds", "total_seconds", "min", "max", "resolution"}
    ),
    ("datetime", "timezone"): frozenset({"utc", "utcoffset", "tzname", "dst"}),
    ("decimal", "Decimal"): frozenset(
        {"adjusted", "as_integer_ratio", "as_tuple", "compare", "copy_abs",
         "copy_negate", "exp", "is_finite", "is_infinite", "is_nan", "is_signed",
         "is_zero", "ln", "log10", "max", "min", "normalize", "quantize", "sqrt",
         "to_eng_string", "to_integral_value", "real", "imag", "from_float"}
    ),
    ("fractions", "Fraction"): frozenset(
        {"numerator", "denominator", "limit_denominator", "from_float",
         "from_decimal", "as_integer_ratio"}
    ),
    ("collections", "Counter"): _DICT | {"most_common", "elements", "subtract", "total"},
    ("collections", "OrderedDict"): _DICT | {"move_to_end"},
    ("collections", "defaultdict"): _DICT | {"default_factory"},
    ("collections", "deque"): frozenset(
        {"append", "appendleft", "clear", "copy", "count", "extend", "extendleft",
         "index", "insert", "pop", "popleft", "remove", "reverse", "rotate", "maxlen"}
    ),
    ("re", "Pattern"): frozenset(
        {"match", "search", "fullmatch", "findall", "finditer", "split", "sub", "subn",
         "pattern", "flags", "groups", "groupindex"}
    ),
    ("re", "Match"): frozenset(
        {"group", "groups", "groupdict", "start", "end", "span", "string", "pos",
         "endpos", "lastindex", "lastgroup", "expand"}
    ),
    ("time", "struct_time"): frozenset(
        {"tm_year", "tm_mon", "tm_mday", "tm_hour", "tm_min", "tm_sec", "tm_wday",
         "tm_yday", "tm_isdst", "tm_zone", "tm_gmtoff"}
    ),
    ("uuid", "UUID"): frozenset({"hex", "int", "bytes", "urn", "version", "variant"}),
    ("itertools", "chain"): frozenset({"from_iterable"}),
    **{
        ("itertools", name): frozenset()
        for name in (
            "accumulate", "combinations", "combinations_with_replacement", "compress",
            "count", "cycle", "dropwhile", "filterfalse", "groupby", "islice",
            "pairwise", "permutations", "product", "repeat", "starmap", "takewhile",
            "zip_longest", "batched",
        )
    },
}

#: Types that are not module attributes: (module, factory) -> readable attributes.
#: The type is that of ``module.factory()``.
VETTED_RESULT_TYPES: dict[tuple[str, str], frozenset[str]] = {
    ("hashlib", "sha256"): frozenset(
        {"hexdigest", "digest", "update", "copy", "name", "digest_size", "block_size"}
    ),
}

#: Modules that allowed modules import on first use: the fork server imports them
#: up front, because a script child may not be able to open files any more.
LAZY_IMPORTS: dict[str, tuple[str, ...]] = {
    "collections": ("heapq", "copy", "reprlib"),
    "datetime": ("_strptime",),
    "time": ("_strptime",),
    "statistics": ("random", "bisect"),
    "json": ("json.decoder", "json.encoder", "json.scanner"),
    "re": ("copyreg",),
    "decimal": ("numbers",),
    "fractions": ("decimal",),
    "random": ("bisect", "hashlib"),
    "uuid": ("hashlib", "random"),
    "hashlib": ("_hashlib", "_blake2", "_sha2", "_sha256", "_sha512", "_md5", "_sha1"),
}

#: Vetted types whose objects a script may mutate (item stores).
WRITABLE_VETTED: frozenset[tuple[str, str]] = frozenset(
    {("collections", "Counter"), ("collections", "OrderedDict"),
     ("collections", "defaultdict"), ("collections", "deque")}
)

# --------------------------------------------------------------------------------------
# The app a script sees, and host objects under app.state
# --------------------------------------------------------------------------------------

#: Attributes of ``app`` a script may read. ``state`` is the namespace where the
#: host puts the objects scripts may reach; ``name`` is the app's import name.
APP_ATTRIBUTES: frozenset[str] = frozenset({"state", "name"})

#: Packages that are never host code, whatever COMMON_API_SCRIPT_HOST_PACKAGES says:
#: the standard library, the web framework and its helpers, the server, the metrics
#: libraries and this package itself. Their objects lead back to the operating
#: system, the app's config or its secrets.
NEVER_HOST: frozenset[str] = frozenset(
    set(sys.stdlib_module_names)
    | {
        "builtins", "flask", "werkzeug", "jinja2", "markupsafe", "itsdangerous",
        "click", "blinker", "gunicorn", "prometheus_client",
        "prometheus_flask_exporter", "RestrictedPython", "common_api", "pytest",
        "_pytest", "pluggy", "setuptools", "pkg_resources", "importlib_metadata",
    }
)

#: Modules of this package that are host code all the same: the bundled demo
#: component (``Flask("common_api.demo")``) is what the seed's example reads.
HOST_EXCEPTIONS: frozenset[str] = frozenset({"common_api.demo"})


def never_host(package: str) -> bool:
    """Whether ``package`` (a dotted module prefix) may never count as host code."""
    if package in HOST_EXCEPTIONS or any(package.startswith(m + ".") for m in HOST_EXCEPTIONS):
        return False
    top = package.split(".")[0]
    return top in NEVER_HOST or top.lstrip("_") in NEVER_HOST


def app_package(import_name: object) -> str | None:
    """The host package derived from an app's import name (``mypkg.app`` -> ``mypkg``).

    ``__main__`` stays ``__main__``; an app of this package (the demo) is its own
    module; a name under a package that is never host code gives nothing.
    """
    if not isinstance(import_name, str) or not import_name:
        return None
    top = import_name.split(".")[0]
    if not never_host(top):
        return top
    return None if never_host(import_name) else import_name


#: Attribute values a script may assign to a host attribute, and the bounds of a
#: tuple value: reconfiguring a setting, not handing the host new objects.
WRITABLE_SCALARS: tuple[type, ...] = (type(None), bool, int, float, str)
MAX_WRITE_ITEMS = 1_000
MAX_WRITE_CHARS = 65_536


# --------------------------------------------------------------------------------------
# Limits of the worker <-> child channel
# --------------------------------------------------------------------------------------

#: Host operations (attribute reads, calls, ...) one script may request.
MAX_HOST_CALLS = 10_000
#: Bytes one script may exchange with the worker, both directions together.
MAX_CHANNEL_BYTES = 64 * 1024 * 1024
#: Largest single request from the child (the final result and output travel as
#: raw bytes, never parsed as JSON): what one json.loads call in the worker may cost.
MAX_MESSAGE_BYTES = 256 * 1024
#: Largest single reply of the worker, estimated before it is serialized.
MAX_REPLY_BYTES = 1024 * 1024
#: Items and nesting depth of plain data copied between the processes. Every visit
#: counts, so data that refers to the same list many times counts each time.
MAX_DATA_ITEMS = 100_000
MAX_DATA_DEPTH = 32
#: Items of one request's arguments (decoded by the worker, then usually answered):
#: half the above, so decoding and answering one request stay within ~50 ms.
MAX_REQUEST_ITEMS = 50_000
#: Hash containers (sets, frozensets, dicts) the worker rebuilds from a request.
#: Keys whose hashing is not randomised (ints, floats, tuples...) can be chosen to
#: collide, which makes building the container quadratic in one C call: such a
#: container may hold at most MAX_HASHED_ITEMS keys, and the sum of n*n over one
#: request's containers is at most MAX_HASH_WORK. str/bytes keys hash randomly.
MAX_HASHED_ITEMS = 1_024
MAX_HASH_WORK = 2_000_000
#: Most digits of an integer in a request (an int beyond 4096 bits is refused
#: anyway): parsing an integer is quadratic in its digits, in one C call.
MAX_DIGITS = 1_300
#: Longest exception message passed between the processes.
MAX_ERROR_CHARS = 500
#: Seconds a freshly spawned child may take to become ready.
SPAWN_TIMEOUT = 15.0
#: Open file descriptors the child may hold while the script runs.
CHILD_MAX_FILES = 16
