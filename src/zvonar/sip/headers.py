"""Structured SIP header values (RFC 3261 §7.3, §20, §25.1).

Values handed in here are already unfolded (message.py replaces LWS folding by a
single SP, §7.3.1). Parsers are quote- and angle-bracket-aware and raise
SipParseError (status 400) on malformed input.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from zvonar.sip.errors import SipParseError
from zvonar.sip.uri import (
    AbsoluteUri,
    Params,
    Uri,
    format_params,
    merge_params,
    parse_host,
    parse_uri,
)

__all__ = [
    "CONTACT_WILDCARD",
    "LIST_HEADERS",
    "CSeq",
    "NameAddr",
    "Via",
    "canonical_name",
    "header_key",
    "parse_auth_params",
    "parse_cseq",
    "parse_name_addr",
    "parse_name_addr_list",
    "parse_params",
    "parse_via",
    "parse_via_list",
    "quote_string",
    "split_comma_list",
    "unquote_string",
]

# token = 1*(alphanum / "-" / "." / "!" / "%" / "*" / "_" / "+" / "`" / "'" / "~")  (§25.1)
_TCHAR = r"A-Za-z0-9\-.!%*_+`'~"
TOKEN = re.compile(f"[{_TCHAR}]+")
# display-name = *(token LWS) / quoted-string; the token form is 1+ tokens separated by LWS.
_TOKEN_DISPLAY = re.compile(f"[{_TCHAR}]+(?:[ \t]+[{_TCHAR}]+)*")
# quoted-string = SWS DQUOTE *(qdtext / quoted-pair ) DQUOTE; the match starts after the
# opening quote and ends after the closing one.
_QUOTED_REST = re.compile(r'(?:[^"\\]|\\.)*"', re.DOTALL)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)
# Where a comma list needs a closer look (§7.3.1: never split inside quotes or <...>).
_LIST_SPECIAL = re.compile(r'[,"<]')
# Via: sent-protocol = protocol-name SLASH protocol-version SLASH transport, SLASH = SWS "/" SWS
_VIA_PROTO = re.compile(f"([{_TCHAR}]+)[ \t]*/[ \t]*([{_TCHAR}]+)[ \t]*/[ \t]*([{_TCHAR}]+)[ \t]+")


# RFC 3261 §7.3.3 compact forms, plus later RFCs' (3265/6665 o u, 3515 r, 3892 b,
# 3841 a j d, 4028 x, 4474 n, 8224 y).
_COMPACT = {
    "i": "Call-ID",
    "m": "Contact",
    "e": "Content-Encoding",
    "l": "Content-Length",
    "c": "Content-Type",
    "f": "From",
    "s": "Subject",
    "k": "Supported",
    "t": "To",
    "v": "Via",
    "o": "Event",
    "u": "Allow-Events",
    "r": "Refer-To",
    "b": "Referred-By",
    "a": "Accept-Contact",
    "j": "Reject-Contact",
    "d": "Request-Disposition",
    "x": "Session-Expires",
    "y": "Identity",
    "n": "Identity-Info",
}
# Canonical spellings that plain Title-Case would get wrong.
_SPECIAL = [
    "Call-ID",
    "CSeq",
    "WWW-Authenticate",
    "MIME-Version",
    "RSeq",
    "RAck",
    "SIP-ETag",
    "SIP-If-Match",
    "P-Asserted-Identity",
    "P-Preferred-Identity",
    "P-Charging-Vector",
    "Diversion",
]
_CANONICAL: dict[str, str] = {k: v for k, v in _COMPACT.items()}
_CANONICAL.update({v.lower(): v for v in _COMPACT.values()})
_CANONICAL.update({v.lower(): v for v in _SPECIAL})

# Header keys (lower-case full names) whose values are comma-separated lists (§7.3.1:
# "multiple header field rows ... if and only if the entire field-value is defined to be a
# comma-separated list"). Authorization & co. are deliberately absent: commas separate
# their parameters. Date, Subject… are not lists either.
LIST_HEADERS = frozenset(
    {
        "via",
        "contact",
        "route",
        "record-route",
        "path",
        "service-route",
        "allow",
        "allow-events",
        "supported",
        "require",
        "proxy-require",
        "unsupported",
        "accept",
        "accept-encoding",
        "accept-language",
        "content-encoding",
        "content-language",
        "in-reply-to",
        "alert-info",
        "call-info",
        "error-info",
        "warning",
        "reason",
        "accept-contact",
        "reject-contact",
        "security-client",
        "security-server",
        "security-verify",
        "p-associated-uri",
        "p-asserted-identity",
        "p-preferred-identity",
        "history-info",
        "diversion",
    }
)

_KEY_CACHE: dict[str, str] = {}
_KEY_CACHE_MAX = 4096


def header_key(name: str) -> str:
    """Lookup key of a header name: lower-case full name ("i" → "call-id"). Validates the token."""
    key = _KEY_CACHE.get(name)
    if key is not None:
        return key
    if not TOKEN.fullmatch(name):
        raise SipParseError(f"bad header name {name!r}")
    low = name.lower()
    full = _COMPACT.get(low)
    key = full.lower() if full is not None else low
    if len(_KEY_CACHE) < _KEY_CACHE_MAX:
        _KEY_CACHE[name] = key
    return key


def canonical_name(name: str) -> str:
    """Full canonical spelling: "i" → "Call-ID", "cseq" → "CSeq", "x-foo" → "X-Foo"."""
    low = name.lower()
    canon = _CANONICAL.get(low)
    if canon is not None:
        return canon
    return "-".join(part[:1].upper() + part[1:] for part in low.split("-"))


def quote_string(text: str) -> str:
    """Make a quoted-string (§25.1), escaping backslash and double quote."""
    if "\\" in text or '"' in text:
        text = text.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{text}"'


def unquote_string(text: str) -> str:
    """Strip the quotes of a quoted-string and resolve quoted-pairs; other text unchanged."""
    if len(text) >= 2 and text[0] == '"' and text[-1] == '"':
        inner = text[1:-1]
        return _QUOTED_PAIR.sub(r"\1", inner) if "\\" in inner else inner
    return text


def _split_quoted(text: str, sep: str) -> list[str]:
    """Split on `sep` outside quoted strings. Raises on an unterminated quote."""
    if '"' not in text:
        return text.split(sep)
    parts: list[str] = []
    start = pos = 0
    while True:
        s = text.find(sep, pos)
        q = text.find('"', pos)
        if q >= 0 and (s < 0 or q < s):
            m = _QUOTED_REST.match(text, q + 1)
            if m is None:
                raise SipParseError(f"unterminated quoted string in {text!r}")
            pos = m.end()
            continue
        if s < 0:
            parts.append(text[start:])
            return parts
        parts.append(text[start:s])
        start = pos = s + 1


def split_comma_list(value: str) -> list[str]:
    """Split a comma list (§7.3.1), never inside quotes or <...>. Items are stripped.

    Linear time: an unterminated quote or "<" makes the rest one (malformed) item.
    """
    if '"' not in value and "<" not in value:
        return [item.strip() for item in value.split(",")]
    items: list[str] = []
    start = pos = 0
    while True:
        m = _LIST_SPECIAL.search(value, pos)
        if m is None:
            break
        i = m.start()
        ch = value[i]
        if ch == ",":
            items.append(value[start:i].strip())
            start = pos = i + 1
        elif ch == '"':
            q = _QUOTED_REST.match(value, i + 1)
            if q is None:
                break
            pos = q.end()
        else:
            gt = value.find(">", i + 1)
            if gt < 0:
                break
            pos = gt + 1
    items.append(value[start:].strip())
    return items


# generic-param = token [ EQUAL gen-value ]; gen-value = token / host / quoted-string (§25.1).
# host covers a bracketed IPv6 reference; RFC 5118 §4.5 also asks us to accept a bare IPv6
# address in received=, hence ":" in the unquoted value. EQUAL and SEMI allow LWS around.
_GENERIC_PARAM = (
    rf"[ \t]*;[ \t]*([{_TCHAR}]+)"
    rf'(?:[ \t]*=[ \t]*([{_TCHAR}:\[\]]+|"(?:[^"\\]|\\.)*"))?'
)
_PARAM_ITEM = re.compile(_GENERIC_PARAM, re.DOTALL)
_PARAMS = re.compile(rf"(?:{_GENERIC_PARAM})*[ \t]*", re.DOTALL)
# One param without LWS or quotes: what nearly every peer sends (";tag=…", ";branch=…;rport").
_PLAIN_PARAM = re.compile(rf"([{_TCHAR}]+)(?:=([{_TCHAR}:\[\]]+))?")


def parse_params(text: str) -> Params:
    """Header params `;a=b ;c; d="x y"` (§25.1 generic-param), LWS around ; and = allowed.

    The text must be empty or start (after whitespace) with ";". Empty params
    (";;") or empty values ("a=") are errors (RFC 4475 §3.1.2.1).
    """
    if not text:
        return ()
    if text[0] == ";" and '"' not in text and " " not in text and "\t" not in text:
        # Fast path, same result: without quotes or LWS the grammar is ";"-separated items;
        # anything else (an empty item, "a=", a bad character) takes the full check below.
        out: list[tuple[str, str | None]] = []
        plain = _PLAIN_PARAM.fullmatch
        for item in text[1:].split(";"):
            m = plain(item)
            if m is None:
                break
            out.append((m[1], m[2]))
        else:
            return tuple(out)
    if not _PARAMS.fullmatch(text):
        raise SipParseError(f"bad parameters {text[:80]!r}")
    return tuple((name, value or None) for name, value in _PARAM_ITEM.findall(text))


@dataclass(frozen=True, slots=True)
class NameAddr:
    """From / To / Contact / Route value (§20.10, §25.1 name-addr / addr-spec).

    `params` are the *header* params (e.g. tag, expires, q); with the addr-spec form
    every ";param" after the URI is a header param, never a URI param.
    """

    display_name: str | None
    uri: Uri
    params: Params = ()

    @property
    def tag(self) -> str | None:
        return self.param("tag")

    @property
    def is_wildcard(self) -> bool:
        """The `Contact: *` of a REGISTER that removes all bindings (§10.2.2)."""
        return isinstance(self.uri, AbsoluteUri) and self.uri.scheme == "*"

    def param(self, name: str) -> str | None:
        low = name.lower()
        for pname, pvalue in self.params:
            if pname.lower() == low:
                return None if pvalue is None else unquote_string(pvalue)
        return None

    def has_param(self, name: str) -> bool:
        low = name.lower()
        return any(p.lower() == low for p, _ in self.params)

    def with_tag(self, tag: str) -> NameAddr:
        return self.with_params(("tag", tag))

    def with_params(self, *pairs: tuple[str, str | None], **kwargs: str | None) -> NameAddr:
        # The constructor, not dataclasses.replace: same copy, without its field walk.
        params = merge_params(self.params, (*pairs, *kwargs.items()))
        return NameAddr(self.display_name, self.uri, params)

    def __str__(self) -> str:
        if self.is_wildcard:
            return "*"
        uri = f"<{self.uri}>"
        if self.display_name is not None:
            uri = f"{quote_string(self.display_name)} {uri}"
        return uri + format_params(self.params) if self.params else uri


CONTACT_WILDCARD = NameAddr(None, AbsoluteUri("*", ""))


# Parsed name-addrs and Vias by their text, like parse_uri's cache (uri.py): they are immutable,
# and the same value comes back on every message of a dialog or transaction (From, To, our own
# Via in the responses) and across calls (each phone's Contact). Bounded: short texts only,
# the whole map dropped when full.
_ADDR_CACHE: dict[str, NameAddr] = {}
_VIA_CACHE: dict[str, Via] = {}
_CACHE_MAX = 4096
_CACHE_TEXT = 256


def parse_name_addr(value: str) -> NameAddr:
    """Parse `"Name" <uri>;p=v`, `Name <uri>`, or addr-spec `uri;p=v` (§20.10)."""
    addr = _ADDR_CACHE.get(value)
    if addr is not None:
        return addr
    addr = _parse_name_addr(value)
    if len(value) <= _CACHE_TEXT:
        if len(_ADDR_CACHE) >= _CACHE_MAX:
            _ADDR_CACHE.clear()
        _ADDR_CACHE[value] = addr
    return addr


def _parse_name_addr(value: str) -> NameAddr:
    v = value.strip()
    display: str | None = None
    if v.startswith('"'):
        m = _QUOTED_REST.match(v, 1)
        if m is None:
            raise SipParseError(f"unterminated quoted display name in {value!r}")
        display = unquote_string(v[: m.end()])
        rest = v[m.end() :].lstrip()
        if not rest.startswith("<"):
            raise SipParseError(f"quoted display name without <uri> in {value!r}")
        lt = 0
        v = rest
    else:
        lt = v.find("<")
        if lt >= 0 and ";" in v[:lt]:
            lt = -1  # a '<' inside a header param of an addr-spec
        if lt > 0:
            # RFC 4475 §3.1.1.6: no LWS is needed between a token display name and "<".
            dn = v[:lt].rstrip()
            if not _TOKEN_DISPLAY.fullmatch(dn):
                raise SipParseError(f"bad display name in {value!r}")
            display = dn
    if lt >= 0:
        gt = v.find(">", lt)
        if gt < 0:
            raise SipParseError(f"missing '>' in {value!r}")
        # RFC 4475 §3.1.2.14 lets us ignore spaces around the URI inside <>.
        uri = parse_uri(v[lt + 1 : gt].strip())
        return NameAddr(display, uri, parse_params(v[gt + 1 :]))
    # addr-spec: §20.10 — the URI cannot hold ",", "?" or ";", so params after it belong
    # to the header. A "?" means a URI header without <>: RFC 4475 §3.1.2.13 → 400.
    uri_text, semi, ptext = v.partition(";")
    uri_text = uri_text.rstrip()
    if "?" in uri_text or "," in uri_text:
        raise SipParseError(f"addr-spec with '?' or ',' must use <> (§20.10): {value!r}")
    if not uri_text:
        raise SipParseError(f"empty address in {value!r}")
    return NameAddr(None, parse_uri(uri_text), parse_params(semi + ptext))


def parse_name_addr_list(value: str) -> list[NameAddr]:
    """Contact / Route / Record-Route list; `*` gives [CONTACT_WILDCARD]."""
    if value.strip() == "*":
        return [CONTACT_WILDCARD]
    out = []
    for item in split_comma_list(value):
        if not item:
            raise SipParseError(f"empty element in address list {value!r}")
        out.append(parse_name_addr(item))
    return out


@dataclass(frozen=True, slots=True)
class Via:
    """One Via hop (§20.42): `SIP/2.0/UDP host:port;branch=…;received=…;rport`."""

    transport: str
    host: str
    port: int | None = None
    params: Params = ()
    protocol: str = "SIP/2.0"

    def param(self, name: str) -> str | None:
        low = name.lower()
        for pname, pvalue in self.params:
            if pname.lower() == low:
                return None if pvalue is None else unquote_string(pvalue)
        return None

    def has_param(self, name: str) -> bool:
        low = name.lower()
        return any(p.lower() == low for p, _ in self.params)

    @property
    def branch(self) -> str | None:
        return self.param("branch")

    @property
    def received(self) -> str | None:
        return self.param("received")

    @property
    def maddr(self) -> str | None:
        return self.param("maddr")

    @property
    def rport(self) -> int | bool | None:
        """RFC 3581: None when absent, True when present without a value, else the port."""
        for pname, pvalue in self.params:
            if pname.lower() == "rport":
                return True if pvalue is None else int(pvalue)
        return None

    @property
    def sent_by(self) -> str:
        return self.host if self.port is None else f"{self.host}:{self.port}"

    def with_params(self, *pairs: tuple[str, str | None], **kwargs: str | None) -> Via:
        params = merge_params(self.params, (*pairs, *kwargs.items()))
        return Via(self.transport, self.host, self.port, params, self.protocol)

    def __str__(self) -> str:
        return f"{self.protocol}/{self.transport} {self.sent_by}{format_params(self.params)}"


def _squeeze_colon(sent_by: str) -> str:
    """sent-by = host [ COLON port ] with COLON = SWS ":" SWS: drop the optional LWS."""
    if sent_by.startswith("["):
        close = sent_by.find("]")
        if close < 0:
            return sent_by
        rest = sent_by[close + 1 :].strip()
        if rest.startswith(":"):
            return f"{sent_by[: close + 1]}:{rest[1:].lstrip()}"
        return sent_by[: close + 1] + rest
    host, colon, port = sent_by.partition(":")
    return f"{host.rstrip()}:{port.lstrip()}" if colon else sent_by


def parse_via(value: str) -> Via:
    """One via-parm (§25.1). Tolerates LWS around "/" ":" ";" "=" (RFC 4475 §3.1.1.1)."""
    via = _VIA_CACHE.get(value)
    if via is not None:
        return via
    via = _parse_via(value)
    if len(value) <= _CACHE_TEXT:
        if len(_VIA_CACHE) >= _CACHE_MAX:
            _VIA_CACHE.clear()
        _VIA_CACHE[value] = via
    return via


def _parse_via(value: str) -> Via:
    v = value.strip()
    if v.startswith("SIP/2.0/"):
        sp = v.find(" ", 8)
        if sp < 0:
            raise SipParseError(f"Via without sent-by: {value!r}")
        protocol, transport = "SIP/2.0", v[8:sp]
        if not TOKEN.fullmatch(transport):
            raise SipParseError(f"bad Via transport: {value!r}")
        rest = v[sp + 1 :]
    else:
        m = _VIA_PROTO.match(v)
        if m is None:
            raise SipParseError(f"bad Via sent-protocol: {value!r}")
        protocol, transport = f"{m.group(1)}/{m.group(2)}", m.group(3)
        rest = v[m.end() :]
    sent_by, semi, ptext = rest.partition(";")
    host, port = parse_host(_squeeze_colon(sent_by.strip()))
    params = parse_params(semi + ptext)
    for pname, pvalue in params:
        if pname.lower() == "rport" and pvalue is not None and not pvalue.isdigit():
            raise SipParseError(f"bad rport in Via: {value!r}")
    return Via(transport.upper(), host, port, params, protocol.upper())


def parse_via_list(value: str) -> list[Via]:
    out = []
    for item in split_comma_list(value):
        if not item:
            raise SipParseError(f"empty element in Via {value!r}")
        out.append(parse_via(item))
    return out


@dataclass(frozen=True, slots=True)
class CSeq:
    """CSeq (§20.16): sequence number < 2**31 and the method."""

    seq: int
    method: str

    def __str__(self) -> str:
        return f"{self.seq} {self.method}"


def parse_cseq(value: str) -> CSeq:
    parts = value.split()
    if len(parts) != 2:
        raise SipParseError(f"bad CSeq {value!r}")
    num, method = parts
    # §8.1.1.5: the sequence number MUST be expressible as a 32-bit unsigned integer and
    # less than 2**31; cap the digit count before int() (RFC 4475 §3.1.2.4).
    if not (num.isdigit() and num.isascii()) or len(num) > 10 or int(num) >= 2**31:
        raise SipParseError(f"CSeq number out of range {value!r}")
    if not TOKEN.fullmatch(method):
        raise SipParseError(f"bad CSeq method {value!r}")
    return CSeq(int(num), method)


def parse_auth_params(value: str) -> tuple[str, dict[str, str]]:
    """`Digest realm="a", nonce="b", qop=auth` → ("Digest", {"realm": "a", ...}) (§25.1).

    Param names are lower-cased, quoted values unquoted. A bare token (e.g. a token68
    credential) is stored with an empty name.
    """
    v = value.strip()
    scheme, _, rest = v.partition(" ")
    if not TOKEN.fullmatch(scheme):
        raise SipParseError(f"bad auth scheme in {value!r}")
    params: dict[str, str] = {}
    if not rest.strip():
        return scheme, params
    for item in _split_quoted(rest, ","):
        item = item.strip()
        if not item:
            continue
        name, eq, pvalue = item.partition("=")
        if not eq:
            params[""] = item
            continue
        name = name.strip().lower()
        if not TOKEN.fullmatch(name):
            raise SipParseError(f"bad auth parameter {item!r}")
        params[name] = unquote_string(pvalue.strip())
    return scheme, params
