"""SIP, SIPS and tel URIs (RFC 3261 §19.1, §25.1; RFC 3966; RFC 5118).

Components are kept *as received* (still %HH-escaped) so that serializing a
parsed URI gives back the same text; only the host is lower-cased. Comparison
(`uri_equal`) unescapes per §19.1.4.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, replace
from typing import TypeAlias
from urllib.parse import unquote

from zvonar.sip.errors import SipParseError

__all__ = [
    "AbsoluteUri",
    "Params",
    "SipUri",
    "TelUri",
    "Uri",
    "escape",
    "parse_uri",
    "unescape",
    "uri_equal",
]

Params: TypeAlias = tuple[tuple[str, str | None], ...]

# RFC 3986 §3.1 / RFC 3261 §25.1: scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
# The character classes below include "%"; escapes are then checked once per URI
# (escaped = "%" HEX HEX) — much faster than an alternation per character.
_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")
# user = 1*( unreserved / escaped / user-unreserved ); user-unreserved = & = + $ , ; ? /
_USER = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+")
# password = *( unreserved / escaped / & = + $ , )
_PASSWORD = re.compile(r"[A-Za-z0-9\-_.!~*'()&=+$,%]*")
# hostname (§25.1), leniently allowing "_" seen in real deployments, or an IPv4 address.
_HOSTNAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_\-.]*")
# IPv6reference (RFC 5118 §4.10: RFC 3261's ABNF admits "2001:db8:::192.0.2.1", so tolerate it).
_IPV6REF = re.compile(r"\[[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*\]")
# paramchar = param-unreserved / unreserved / escaped; param-unreserved = [ ] / : & + $
_PC = r"[\[\]/:&+$A-Za-z0-9\-_.!~*'()%]"
_PARAMCHARS = re.compile(f"{_PC}+")
# hostport uri-parameters [headers] after the userinfo, in one linear pass (no class
# overlaps, so no backtracking blow-up on hostile input).
_HOSTPART = re.compile(
    rf"([A-Za-z0-9_][A-Za-z0-9_\-.]*|\[[0-9A-Fa-f:.]*\])(?::([0-9]{{1,5}}))?"
    rf"((?:;{_PC}+(?:={_PC}+)?)*)(?:\?(.*))?",
    re.DOTALL,
)
# headers = hname "=" hvalue *( "&" hname "=" hvalue ); hnv-unreserved = [ ] / ? : + $
_HC = r"[\[\]/?:+$A-Za-z0-9\-_.!~*'()%]"
_URI_HEADERS = re.compile(f"{_HC}+={_HC}*(?:&{_HC}+={_HC}*)*")
_TELNUM = re.compile(r"\+?[0-9A-Fa-f*#\-.()]*[0-9A-Fa-f*#][0-9A-Fa-f*#\-.()]*")
_TEL_VISUAL = re.compile(r"[\-.()]")
# absoluteURI (RFC 3261 §25.1 uric): no whitespace, controls, quotes or angle brackets.
_OPAQUE = re.compile(r"[^\x00-\x20\x7f<>\"]+")
_HEX_ESC = re.compile(r"%([0-9A-Fa-f]{2})")
# RFC 3261 §19.1.4: reserved characters are NOT equivalent to their escaped form.
_RESERVED = frozenset(";/?:@&=+$,")


def unescape(text: str) -> str:
    """Decode every %HH (RFC 3261 §19.1.2) as UTF-8 octets — for display and storage
    keys; comparison uses uri_equal. Invalid UTF-8 is kept as surrogate escapes."""
    if "%" not in text:
        return text
    return unquote(text, errors="surrogateescape")


def _normalize_escapes(text: str) -> str:
    """§19.1.4: "%HH" of a non-reserved character equals that character."""
    if "%" not in text:
        return text

    def repl(m: re.Match[str]) -> str:
        ch = chr(int(m.group(1), 16))
        return "%" + m.group(1).upper() if ch in _RESERVED else ch

    return _HEX_ESC.sub(repl, text)


_SAFE_USER = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!~*'()&=+$,;?/"
)


def escape(text: str, safe: frozenset[str] = _SAFE_USER) -> str:
    """Escape characters not allowed in a URI user part (default) as %HH of their UTF-8."""
    out: list[str] = []
    for ch in text:
        if ch in safe:
            out.append(ch)
        else:
            out.extend(f"%{b:02X}" for b in ch.encode("utf-8"))
    return "".join(out)


def _param_lookup(params: Params, name: str) -> str | None:
    # RFC 4475 §3.1.1.3: %HH in URI params stands for the character (";%6C%72" is ";lr").
    low = name.lower()
    for pname, pvalue in params:
        if pname.lower() == low or ("%" in pname and unescape(pname).lower() == low):
            return None if pvalue is None else unescape(pvalue)
    return None


def _has_param(params: Params, name: str) -> bool:
    low = name.lower()
    return any(
        pname.lower() == low or ("%" in pname and unescape(pname).lower() == low)
        for pname, _ in params
    )


def merge_params(params: Params, updates: Params) -> Params:
    """Replace same-named (case-insensitive) params in place, append new ones."""
    out = list(params)
    for name, value in updates:
        low = name.lower()
        for i, (pname, _) in enumerate(out):
            if pname.lower() == low:
                out[i] = (pname, value)
                break
        else:
            out.append((name, value))
    return tuple(out)


def format_params(params: Params) -> str:
    return "".join(f";{n}" if v is None else f";{n}={v}" for n, v in params)


@dataclass(frozen=True, slots=True)
class SipUri:
    """sip: / sips: URI (RFC 3261 §19.1.1). `user`, `password`, params keep their escapes."""

    scheme: str = "sip"
    user: str | None = None
    password: str | None = None
    host: str = ""
    port: int | None = None
    params: Params = ()
    headers: tuple[tuple[str, str], ...] = ()

    def param(self, name: str) -> str | None:
        """Unescaped value of a URI parameter (case-insensitive, escaped names match too);
        None if absent or valueless (tell those apart with has_param)."""
        return _param_lookup(self.params, name)

    def has_param(self, name: str) -> bool:
        return _has_param(self.params, name)

    def with_params(self, *pairs: tuple[str, str | None], **kwargs: str | None) -> SipUri:
        """Copy with params replaced/added; `uri.with_params(lr=None, transport="tcp")`."""
        return replace(self, params=merge_params(self.params, (*pairs, *kwargs.items())))

    def without_params(self, *names: str) -> SipUri:
        drop = {n.lower() for n in names}
        return replace(self, params=tuple(p for p in self.params if p[0].lower() not in drop))

    def without_headers(self) -> SipUri:
        return replace(self, headers=())

    @property
    def hostport(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    @property
    def transport(self) -> str | None:
        t = self.param("transport")
        return t.lower() if t else None

    def __str__(self) -> str:
        parts = [self.scheme, ":"]
        if self.user is not None:
            parts.append(self.user)
            if self.password is not None:
                parts += (":", self.password)
            parts.append("@")
        parts.append(self.host)
        if self.port is not None:
            parts += (":", str(self.port))
        if self.params:
            parts.append(format_params(self.params))
        if self.headers:
            parts += ("?", "&".join(f"{n}={v}" for n, v in self.headers))
        return "".join(parts)


@dataclass(frozen=True, slots=True)
class TelUri:
    """tel: URI (RFC 3966), e.g. `tel:+1-201-555-0123;ext=42`."""

    number: str
    params: Params = ()

    scheme = "tel"

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")

    @property
    def digits(self) -> str:
        """The number without visual separators (RFC 3966 §5.1.1)."""
        return _TEL_VISUAL.sub("", self.number)

    def param(self, name: str) -> str | None:
        return _param_lookup(self.params, name)

    def has_param(self, name: str) -> bool:
        return _has_param(self.params, name)

    def __str__(self) -> str:
        return f"tel:{self.number}{format_params(self.params)}"


@dataclass(frozen=True, slots=True)
class AbsoluteUri:
    """Any other scheme (RFC 3261 §25.1 absoluteURI), kept verbatim."""

    scheme: str
    value: str

    def __str__(self) -> str:
        return f"{self.scheme}:{self.value}" if self.scheme else self.value


Uri: TypeAlias = SipUri | TelUri | AbsoluteUri


def _split_params(text: str, what: str) -> Params:
    """`a=b;c` (no leading ';') → (("a","b"),("c",None)); RFC 3261 §19.1.1 uri-parameters."""
    out: list[tuple[str, str | None]] = []
    for item in text.split(";"):
        name, eq, value = item.partition("=")
        if not _PARAMCHARS.fullmatch(name) or (eq and not _PARAMCHARS.fullmatch(value)):
            raise SipParseError(f"bad {what} parameter {item!r}")
        if "%" in item and _BAD_ESCAPE.search(item):
            raise SipParseError(f"bad %-escape in {what} parameter {item!r}")
        out.append((name, value if eq else None))
    return tuple(out)


def parse_host(hostport: str) -> tuple[str, int | None]:
    """host [":" port] → (lower-cased host, port). IPv6 stays bracketed (RFC 5118 §4.3)."""
    if hostport.startswith("["):
        close = hostport.find("]")
        host = hostport[: close + 1]
        rest = hostport[close + 1 :]
        if close < 0 or not _IPV6REF.fullmatch(host):
            raise SipParseError(f"bad IPv6 reference {hostport!r}")
        if rest and not rest.startswith(":"):
            raise SipParseError(f"junk after IPv6 reference {hostport!r}")
        port_text = rest[1:] if rest else None
    else:
        host, colon, port_text_ = hostport.partition(":")
        port_text = port_text_ if colon else None
        if not _HOSTNAME.fullmatch(host):
            # RFC 5118 §4.2: an unbracketed IPv6 address lands here ("sip:2001:db8::10").
            raise SipParseError(f"bad host {hostport!r}")
    port: int | None = None
    if port_text is not None:
        if not (port_text.isdigit() and port_text.isascii()) or len(port_text) > 5:
            raise SipParseError(f"bad port in {hostport!r}")
        port = int(port_text)
        if port > 65535:
            raise SipParseError(f"port out of range in {hostport!r}")
    return host.lower(), port


def _parse_sip(scheme: str, rest: str, text: str) -> SipUri:
    # §19.1.1: sip:user:password@host:port;uri-parameters?headers. The user part may
    # legally hold ";" "?" "/" (semiuri, intmeth), so split userinfo off at "@" first.
    if "%" in rest and _BAD_ESCAPE.search(rest):
        raise SipParseError(f"bad %-escape in URI {text!r}")
    at = rest.find("@")
    user: str | None = None
    password: str | None = None
    if at >= 0:
        user, colon, pw = rest[:at].partition(":")
        if not _USER.fullmatch(user):
            raise SipParseError(f"bad user part in URI {text!r}")
        if colon:
            if not _PASSWORD.fullmatch(pw):
                raise SipParseError(f"bad password in URI {text!r}")
            password = pw
        rest = rest[at + 1 :]
    m = _HOSTPART.fullmatch(rest)
    if m is None:
        # RFC 5118 §4.2: an unbracketed IPv6 address lands here ("sip:2001:db8::10").
        raise SipParseError(f"bad host, port or parameters in URI {text!r}")
    host, port_text, ptext, htext = m.groups()
    if host[0] == "[" and ":" not in host:
        raise SipParseError(f"bad IPv6 reference in URI {text!r}")
    port: int | None = None
    if port_text is not None:
        port = int(port_text)
        if port > 65535:
            raise SipParseError(f"port out of range in URI {text!r}")
    params: Params = ()
    if ptext:
        params = tuple(_param_pair(p) for p in ptext[1:].split(";"))
    headers: tuple[tuple[str, str], ...] = ()
    if htext is not None:
        if not _URI_HEADERS.fullmatch(htext):
            raise SipParseError(f"bad URI headers in {text!r}")
        headers = tuple(_header_pair(h) for h in htext.split("&"))
    return SipUri(scheme, user, password, host.lower(), port, params, headers)


def _param_pair(item: str) -> tuple[str, str | None]:
    name, eq, value = item.partition("=")
    return (name, value if eq else None)


def _header_pair(item: str) -> tuple[str, str]:
    name, _, value = item.partition("=")
    return (name, value)


def _parse_tel(rest: str, text: str) -> TelUri:
    number, semi, ptext = rest.partition(";")
    if not _TELNUM.fullmatch(number):
        raise SipParseError(f"bad tel URI {text!r}")
    return TelUri(number, _split_params(ptext, "tel") if semi else ())


# Parsed URIs by their text. URIs are immutable and the same few recur on every message of
# a call and across calls (our own, a trunk's, each phone's Contact and AOR), so a hit saves
# the parse and the objects it would keep alive. Bounded: short texts only, and the whole
# map is dropped when full (a flood of distinct URIs costs a re-parse, never memory).
_URI_CACHE: dict[str, Uri] = {}
_URI_CACHE_MAX = 2048
_URI_CACHE_TEXT = 160


def parse_uri(text: str) -> Uri:
    """Parse a SIP/SIPS/tel URI, or keep any other scheme as AbsoluteUri. Raises SipParseError."""
    uri = _URI_CACHE.get(text)
    if uri is not None:
        return uri
    uri = _parse_uri(text)
    if len(text) <= _URI_CACHE_TEXT:
        if len(_URI_CACHE) >= _URI_CACHE_MAX:
            _URI_CACHE.clear()
        _URI_CACHE[text] = uri
    return uri


def _parse_uri(text: str) -> Uri:
    colon = text.find(":")
    if colon <= 0:
        raise SipParseError(f"URI without scheme {text!r}")
    scheme = text[:colon]
    rest = text[colon + 1 :]
    low = scheme.lower()
    if low == "sip" or low == "sips":
        return _parse_sip(low, rest, text)
    if not _SCHEME.fullmatch(scheme):
        raise SipParseError(f"bad URI scheme in {text!r}")
    if low == "tel":
        return _parse_tel(rest, text)
    if not _OPAQUE.fullmatch(rest):
        raise SipParseError(f"bad URI {text!r}")
    return AbsoluteUri(low, rest)


def _norm_host(host: str) -> str:
    if host.startswith("["):
        try:
            return "[" + ipaddress.IPv6Address(host[1:-1]).compressed + "]"
        except ValueError:
            return host
    return host


def _norm_param_map(params: Params) -> dict[str, str | None]:
    return {
        _normalize_escapes(n).lower(): None if v is None else _normalize_escapes(v).lower()
        for n, v in params
    }


# §19.1.4: these params make URIs unequal when present in only one of them.
_STRICT_PARAMS = ("user", "ttl", "method", "maddr")


def uri_equal(a: Uri, b: Uri) -> bool:
    """URI equivalence per RFC 3261 §19.1.4 (sip/sips) and RFC 3966 §4 (tel)."""
    if isinstance(a, SipUri) and isinstance(b, SipUri):
        if a.scheme != b.scheme or a.port != b.port:
            return False
        if (a.user is None) != (b.user is None) or (a.password is None) != (b.password is None):
            return False
        # Userinfo is compared case-sensitively, escapes resolved.
        if _normalize_escapes(a.user or "") != _normalize_escapes(b.user or ""):
            return False
        if _normalize_escapes(a.password or "") != _normalize_escapes(b.password or ""):
            return False
        if a.host != b.host and _norm_host(a.host) != _norm_host(b.host):
            return False
        pa, pb = _norm_param_map(a.params), _norm_param_map(b.params)
        for name in _STRICT_PARAMS:
            if (name in pa or name in pb) and pa.get(name, "\0") != pb.get(name, "\0"):
                return False
        if any(pb[name] != value for name, value in pa.items() if name in pb):
            return False
        ha = {_normalize_escapes(n).lower(): _normalize_escapes(v) for n, v in a.headers}
        hb = {_normalize_escapes(n).lower(): _normalize_escapes(v) for n, v in b.headers}
        return ha == hb
    if isinstance(a, TelUri) and isinstance(b, TelUri):
        return a.digits.lower() == b.digits.lower() and _norm_param_map(
            a.params
        ) == _norm_param_map(b.params)
    if isinstance(a, AbsoluteUri) and isinstance(b, AbsoluteUri):
        return a.scheme == b.scheme and a.value == b.value
    return False
