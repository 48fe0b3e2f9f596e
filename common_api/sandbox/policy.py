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
from collections.abc import Mapping
from types import MappingProxyType
from typing import NamedTuple

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
DATA_ATTRS: Mapping[type, frozenset[str]] = MappingProxyType({
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
})

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
        # modules whose members open files, devices or programs by name
        "uu", "mailcap", "wave", "aifc", "sunau", "chunk", "imghdr", "sndhdr", "filecmp",
        "tabnanny", "py_compile", "compileall", "zipapp", "cgi", "cgitb", "pipes", "crypt",
        "spwd", "nis", "syslog", "termios", "tty", "curses", "readline",
        "rlcompleter", "tkinter", "turtle", "idlelib", "lib2to3", "getpass", "modulefinder",
        "pyclbr", "unittest", "doctest", "test", "distutils", "ossaudiodev", "nntplib",
        "msvcrt", "winreg", "winsound", "msilib",
    }
)


def _names(text: str) -> frozenset[str]:
    return frozenset(text.split())


#: What each module common_api has vetted exports to scripts: functions, constants,
#: exception classes and vetted classes, each checked one by one (pure functions of their
#: arguments; nothing that reads files, starts processes, changes the machine, resolves
#: attribute paths by name or hands back an interpreter object). An allowed module
#: without a table here is not importable; an operator may still name single members
#: (``mimetypes:guess_type`` in COMMON_API_SCRIPT_ALLOWED_IMPORTS), at their own risk.
#: Names missing from the running Python version are skipped.
MODULE_EXPORTS: dict[str, frozenset[str]] = {
    "math": _names("""
        acos acosh asin asinh atan atan2 atanh cbrt ceil comb copysign cos cosh degrees dist
        e erf erfc exp exp2 expm1 fabs factorial floor fma fmod frexp fsum gamma gcd hypot
        inf isclose isfinite isinf isnan isqrt lcm ldexp lgamma log log10 log1p log2 modf
        nan nextafter perm pi pow prod radians remainder sin sinh sqrt sumprod tan tanh tau
        trunc ulp"""),
    "cmath": _names("""
        acos acosh asin asinh atan atanh cos cosh e exp inf infj isclose isfinite isinf
        isnan log log10 nan nanj phase pi polar rect sin sinh sqrt tan tanh tau"""),
    "json": _names("dumps loads JSONDecodeError"),
    "re": _names("""
        compile search match fullmatch split findall finditer sub subn escape purge error
        A ASCII DOTALL I IGNORECASE M MULTILINE NOFLAG S U UNICODE VERBOSE X"""),
    "string": _names("""
        ascii_letters ascii_lowercase ascii_uppercase capwords digits hexdigits octdigits
        printable punctuation whitespace"""),
    # not attrgetter/methodcaller (attribute paths by name), setitem/delitem (stores
    # past the write guard)
    "operator": _names("""
        abs add and_ call concat contains countOf eq floordiv ge getitem gt index indexOf
        inv invert is_ is_not itemgetter le length_hint lshift lt matmul mod mul ne neg
        not_ or_ pos pow rshift sub truediv truth xor"""),
    # not clock_settime*, tzset, pthread_getcpuclockid, get_clock_info
    "time": _names("""
        time time_ns monotonic monotonic_ns perf_counter perf_counter_ns process_time
        process_time_ns thread_time thread_time_ns clock_gettime clock_gettime_ns
        clock_getres gmtime localtime mktime strftime strptime asctime ctime sleep
        timezone altzone daylight tzname struct_time CLOCK_BOOTTIME CLOCK_MONOTONIC
        CLOCK_MONOTONIC_RAW CLOCK_PROCESS_CPUTIME_ID CLOCK_REALTIME CLOCK_TAI
        CLOCK_THREAD_CPUTIME_ID"""),
    "datetime": _names("date datetime time timedelta timezone MINYEAR MAXYEAR UTC"),
    "decimal": _names("""
        Decimal DecimalException InvalidOperation DivisionByZero Inexact Rounded Overflow
        Underflow Subnormal Clamped FloatOperation ROUND_05UP ROUND_CEILING ROUND_DOWN
        ROUND_FLOOR ROUND_HALF_DOWN ROUND_HALF_EVEN ROUND_HALF_UP ROUND_UP"""),
    "fractions": _names("Fraction"),
    "statistics": _names("""
        mean fmean geometric_mean harmonic_mean median median_low median_high
        median_grouped mode multimode pstdev pvariance stdev variance quantiles correlation
        covariance StatisticsError"""),
    # the module-level generator's methods; not seed/getstate/setstate or the classes
    "random": _names("""
        random uniform triangular randint randrange choice choices sample shuffle
        getrandbits randbytes gauss normalvariate lognormvariate expovariate
        vonmisesvariate gammavariate betavariate paretovariate weibullvariate
        binomialvariate"""),
    # not file_digest (reads a file object), new with arbitrary names is fine
    "hashlib": _names("""
        md5 sha1 sha224 sha256 sha384 sha512 sha3_224 sha3_256 sha3_384 sha3_512 blake2b
        blake2s new algorithms_available algorithms_guaranteed"""),
    # not uuid1/getnode (they may run a program to find the MAC address)
    "uuid": _names("""
        UUID uuid3 uuid4 uuid5 NAMESPACE_DNS NAMESPACE_URL NAMESPACE_OID NAMESPACE_X500"""),
    "itertools": _names("""
        accumulate batched chain combinations combinations_with_replacement compress count
        cycle dropwhile filterfalse groupby islice pairwise permutations product repeat
        starmap takewhile tee zip_longest"""),
    # not wraps/update_wrapper/singledispatch/total_ordering/lru_cache/cache (they copy
    # or read attributes of functions and classes)
    "functools": _names("reduce partial cmp_to_key"),
    "collections": _names("Counter OrderedDict defaultdict deque"),
    # copy and deepcopy of one argument (a memo could rebind copied methods)
    "copy": _names("copy deepcopy Error"),
    "pprint": _names("pformat pprint pp saferepr isreadable isrecursive"),
    "textwrap": _names("wrap fill shorten dedent indent"),
    "base64": _names("""
        b64encode b64decode standard_b64encode standard_b64decode urlsafe_b64encode
        urlsafe_b64decode b32encode b32decode b32hexencode b32hexdecode b16encode b16decode
        b85encode b85decode a85encode a85decode encodebytes decodebytes"""),
    "binascii": _names("""
        hexlify unhexlify b2a_hex a2b_hex b2a_base64 a2b_base64 crc32 crc_hqx Error
        Incomplete"""),
    "bisect": _names("bisect bisect_left bisect_right insort insort_left insort_right"),
    "heapq": _names("""
        heappush heappop heapify heapreplace heappushpop merge nlargest nsmallest"""),
    "zlib": _names("compress decompress crc32 adler32 error"),
    "unicodedata": _names("""
        lookup name decimal digit numeric category bidirectional combining
        east_asian_width mirrored decomposition normalize is_normalized unidata_version"""),
}

#: Members replaced by a wrapper of the sandbox's own (``copy.deepcopy`` without the
#: ``memo`` argument: a prepared memo substitutes the ``self`` of copied methods).
WRAPPED_EXPORTS: frozenset[tuple[str, str]] = frozenset({("copy", "deepcopy")})

#: Members never exported, even when an operator names them as ``module:name``.
DENIED_EXPORTS: dict[str, frozenset[str]] = {
    "uuid": _names("getnode uuid1 uuid6 uuid7 uuid8"),
    "time": _names("tzset clock_settime clock_settime_ns pthread_getcpuclockid"),
    "operator": _names("attrgetter methodcaller setitem delitem"),
    "functools": _names("update_wrapper wraps singledispatch singledispatchmethod "
                        "partialmethod cached_property"),
    "mimetypes": _names("read_mime_types init"),
    "mailcap": _names("findmatch getcaps readmailcapfile subst"),
}


class VettedClass(NamedTuple):
    """What a script may read on a vetted class and on its instances.

    ``on_class`` holds only constructors (class and static methods) and constants: an
    unbound method read from a class would accept any ``self``.
    """

    on_class: frozenset[str]
    on_instance: frozenset[str]


_DATE = _names("""year month day isoformat strftime weekday isoweekday isocalendar replace
    toordinal ctime timetuple""")
_DATE_MAKERS = _names("today fromisoformat fromordinal fromtimestamp fromisocalendar min max "
                      "resolution")
_TIME = _names("hour minute second microsecond tzinfo fold isoformat strftime replace "
               "utcoffset tzname dst")
_DICT_METHODS = _DICT  # bound to a script's own instance only

#: Classes of vetted modules: (module, name) -> what a script may read on them.
VETTED_CLASSES: dict[tuple[str, str], VettedClass] = {
    ("datetime", "date"): VettedClass(_DATE_MAKERS, _DATE),
    ("datetime", "datetime"): VettedClass(
        _DATE_MAKERS | _names("now utcnow utcfromtimestamp combine strptime"),
        _DATE | _TIME | _names("timestamp date time timetz astimezone utctimetuple")),
    ("datetime", "time"): VettedClass(_names("fromisoformat min max resolution"), _TIME),
    ("datetime", "timedelta"): VettedClass(
        _names("min max resolution"), _names("days seconds microseconds total_seconds")),
    ("datetime", "timezone"): VettedClass(_names("utc min max"),
                                          _names("utcoffset tzname dst")),
    ("decimal", "Decimal"): VettedClass(_names("from_float"), _names("""
        adjusted as_integer_ratio as_tuple compare copy_abs copy_negate exp is_finite
        is_infinite is_nan is_signed is_zero ln log10 max min normalize quantize sqrt
        to_eng_string to_integral_value real imag""")),
    ("fractions", "Fraction"): VettedClass(
        _names("from_float from_decimal"),
        _names("numerator denominator limit_denominator as_integer_ratio")),
    ("collections", "Counter"): VettedClass(
        frozenset(), _DICT_METHODS | _names("most_common elements subtract total")),
    ("collections", "OrderedDict"): VettedClass(frozenset(), _DICT_METHODS | {"move_to_end"}),
    ("collections", "defaultdict"): VettedClass(frozenset(),
                                                _DICT_METHODS | {"default_factory"}),
    ("collections", "deque"): VettedClass(frozenset(), _names("""
        append appendleft clear copy count extend extendleft index insert pop popleft remove
        reverse rotate maxlen""")),
    ("re", "Pattern"): VettedClass(frozenset(), _names("""
        match search fullmatch findall finditer split sub subn pattern flags groups
        groupindex""")),
    ("re", "Match"): VettedClass(frozenset(), _names("""
        group groups groupdict start end span string pos endpos lastindex lastgroup
        expand""")),
    ("time", "struct_time"): VettedClass(frozenset(), _names("""
        tm_year tm_mon tm_mday tm_hour tm_min tm_sec tm_wday tm_yday tm_isdst tm_zone
        tm_gmtoff""")),
    ("uuid", "UUID"): VettedClass(frozenset(),
                                  _names("hex int bytes urn version variant")),
    ("itertools", "chain"): VettedClass(_names("from_iterable"), frozenset()),
    **{
        ("itertools", name): VettedClass(frozenset(), frozenset())
        for name in _names("""
            accumulate batched combinations combinations_with_replacement compress count
            cycle dropwhile filterfalse groupby islice pairwise permutations product repeat
            starmap takewhile zip_longest""")
    },
    ("functools", "partial"): VettedClass(frozenset(), frozenset()),
}

#: Types that are not module members: (module, factory) -> what instances expose.
#: The type is that of ``module.factory()``.
VETTED_RESULT_TYPES: dict[tuple[str, str], frozenset[str]] = {
    ("hashlib", factory): _names("hexdigest digest update copy name digest_size block_size")
    for factory in ("sha256", "blake2b", "blake2s", "sha3_256")
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
#: Writes listed one by one in a script's audit record; the rest are counted.
MAX_WRITE_RECORDS = 100
#: Longest attribute path (``app.state.engine.l1``) of a host object a script holds:
#: paths are kept per handle and named in records, so they must stay small.
MAX_PATH_CHARS = 256


# --------------------------------------------------------------------------------------
# Limits of the worker <-> child channel
# --------------------------------------------------------------------------------------

#: Host operations (attribute reads, calls, ...) one script may request.
MAX_HOST_CALLS = 10_000
#: Bytes one script may exchange with the worker, both directions together.
MAX_CHANNEL_BYTES = 64 * 1024 * 1024
#: Items of plain data one script may hand the host, all its requests together: what the
#: host may keep of one script (a float costs 5 bytes on the channel, ~32 in the worker,
#: so the byte limit alone let one script add ~0.5 GB to a host cache).
MAX_SCRIPT_ITEMS = 1_000_000
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
#: container may hold at most MAX_HASHED_ITEMS keys, and over one request the sum, for
#: each group of keys with one hash, of its size squared times its largest key's items
#: is at most MAX_HASH_WORK. str/bytes keys hash randomly.
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
