"""The one way the workers of a server ask each other something, without the disk.

Each worker listens on a Unix socket of its own (Linux: an abstract name, so nothing is
created on any file system; elsewhere a socket file in a private directory), named from
the server's identity and the worker's pid. A request is a kind and a JSON body; the
answer is a JSON body or an error. Both ends check the other's credentials
(``SO_PEERCRED``): the listener answers only processes its ``authorize`` accepts (the
runtime accepts the server's other workers), the caller accepts an answer only from the
pid it meant to ask, so no other process can ask or answer. Requests are bounded in size
and time before they are parsed; each call has one deadline, and ``ask_all`` asks every
target at once and names each one that did not answer, with the cause.
"""

from __future__ import annotations

from common_api.peer_channel.address import ABSTRACT, ChannelAddress, server_identity
from common_api.peer_channel.claims import Claims
from common_api.peer_channel.client import FanOut, Replies, ask, ask_all
from common_api.peer_channel.server import Handler, PeerCredentials, PeerServer
from common_api.peer_channel.wire import RemoteError

__all__ = [
    "ABSTRACT",
    "ChannelAddress",
    "Claims",
    "FanOut",
    "Handler",
    "PeerCredentials",
    "PeerServer",
    "RemoteError",
    "Replies",
    "ask",
    "ask_all",
    "server_identity",
]
