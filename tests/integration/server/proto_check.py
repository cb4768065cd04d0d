"""proto_check: validates JSON messages structurally against proto3 message definitions read
from .proto files (the proto3 JSON mapping: lowerCamelCase keys, one key per oneof, bytes as
base64, enums by name, google.protobuf.Duration as "1.5s").

Gemini publishes no JSON schema for its Live WebSocket; its contract is
generative_service.proto (+ content.proto). This module parses those files' message, enum and
oneof declarations (no imports are followed) so the test checks the server against the
vendor's own field lists rather than a hand-copied subset. A type from a file that was not
read fails the check when a message uses it."""

import base64
import re

SCALARS = {
    "string": lambda v: isinstance(v, str),
    "bool": lambda v: isinstance(v, bool),
    "bytes": lambda v: isinstance(v, str) and _is_b64(v),
    "double": lambda v: _is_num(v),
    "float": lambda v: _is_num(v),
}
for _t in ("int32", "sint32", "sfixed32", "uint32", "fixed32"):
    SCALARS[_t] = lambda v: isinstance(v, int) and not isinstance(v, bool)
for _t in ("int64", "sint64", "sfixed64", "uint64", "fixed64"):
    # 64-bit integers may be numbers or decimal strings in the JSON mapping
    SCALARS[_t] = lambda v: (isinstance(v, int) and not isinstance(v, bool)) or (
        isinstance(v, str) and re.fullmatch(r"-?\d+", v) is not None)

WELL_KNOWN = {
    "google.protobuf.Duration": lambda v: isinstance(v, str) and re.fullmatch(
        r"-?\d+(\.\d{1,9})?s", v) is not None,
    "google.protobuf.Timestamp": lambda v: isinstance(v, str),
    "google.protobuf.Struct": lambda v: isinstance(v, dict),
    "google.protobuf.Value": lambda v: True,
}


def _is_num(v):
    return (isinstance(v, (int, float)) and not isinstance(v, bool)) or v in (
        "NaN", "Infinity", "-Infinity")


def _is_b64(v):
    try:
        base64.b64decode(v, validate=True)
        return True
    except ValueError:
        return False


def camel(name):
    parts = name.split("_")
    return parts[0] + "".join(p[:1].upper() + p[1:] for p in parts[1:])


class Field:
    def __init__(self, name, ftype, repeated, oneof, scope):
        self.name, self.json = name, camel(name)
        self.type, self.repeated, self.oneof, self.scope = ftype, repeated, oneof, scope


class Protos:
    """Messages and enums of some .proto files, by full name ("Outer.Inner")."""

    def __init__(self, *paths):
        self.messages, self.enums = {}, {}
        for p in paths:
            with open(p) as f:
                self._parse(f.read())

    # --- parsing ---------------------------------------------------------------------

    def _parse(self, text):
        text = re.sub(r"//[^\n]*", "", text)
        text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
        toks = re.findall(r'"[^"]*"|[A-Za-z_][\w.]*|\d+|[{}\[\]<>=;,()]|\S', text)
        self._block(toks, 0, [], top=True)

    def _block(self, toks, i, scope, top=False, oneof=None):
        while i < len(toks):
            t = toks[i]
            if t == "}":
                return i + 1
            if t == "message":
                name = scope + [toks[i + 1]]
                self.messages[".".join(name)] = []
                i = self._block(toks, i + 3, name)
            elif t == "enum":
                name = ".".join(scope + [toks[i + 1]])
                j, vals = i + 3, []
                while toks[j] != "}":
                    if toks[j + 1] == "=":
                        vals.append(toks[j])
                    j = self._skip_stmt(toks, j)
                self.enums[name] = vals
                i = j + 1
            elif t == "oneof":
                i = self._block(toks, i + 3, scope, oneof=toks[i + 1])
            elif t in ("syntax", "package", "import", "option", "reserved", "extensions"):
                i = self._skip_stmt(toks, i)
            elif t == "service" or (t == "rpc"):
                i = self._skip_braces(toks, i)
            elif not top and t not in (";",):
                repeated = t == "repeated"
                if t in ("repeated", "optional"):
                    i += 1
                if toks[i] == "map":  # map<K, V> name = N;
                    ftype = "map<" + toks[i + 4] + ">"
                    i += 6
                else:
                    ftype = toks[i]
                    i += 1
                fname = toks[i]
                self.messages[".".join(scope)].append(
                    Field(fname, ftype, repeated, oneof, scope))
                i = self._skip_stmt(toks, i)
            else:
                i += 1
        return i

    @staticmethod
    def _skip_stmt(toks, i):
        depth = 0
        while True:
            if toks[i] == "[":
                depth += 1
            elif toks[i] == "]":
                depth -= 1
            elif toks[i] == "{" and depth == 0:
                return Protos._skip_braces(toks, i)
            elif toks[i] == ";" and depth == 0:
                return i + 1
            i += 1

    @staticmethod
    def _skip_braces(toks, i):
        while toks[i] != "{":
            if toks[i] == ";":
                return i + 1
            i += 1
        depth = 0
        while True:
            if toks[i] == "{":
                depth += 1
            elif toks[i] == "}":
                depth -= 1
                if depth == 0:
                    return i + 1
            i += 1

    # --- checking --------------------------------------------------------------------

    def _resolve(self, tname, scope):
        for k in range(len(scope), -1, -1):
            full = ".".join(scope[:k] + [tname])
            if full in self.messages or full in self.enums:
                return full
        return None

    def check(self, msg_name, obj, path=None):
        """Raises AssertionError naming the first field of obj that msg_name does not allow."""
        path = path or msg_name
        assert isinstance(obj, dict), "%s: expected an object, got %r" % (path, obj)
        fields = {f.json: f for f in self.messages[msg_name]}
        fields.update({f.name: f for f in self.messages[msg_name]})
        seen_oneof = {}
        for key, val in obj.items():
            f = fields.get(key)
            assert f is not None, "%s: no field %r in %s" % (path, key, msg_name)
            assert key == f.json, "%s.%s: the JSON mapping spells it %r" % (path, key, f.json)
            if f.oneof:
                assert f.oneof not in seen_oneof, "%s: %r and %r are one oneof (%s)" % (
                    path, seen_oneof[f.oneof], key, f.oneof)
                seen_oneof[f.oneof] = key
            if f.repeated:
                assert isinstance(val, list), "%s.%s: expected a list" % (path, key)
                for n, v in enumerate(val):
                    self._value(f, v, "%s.%s[%d]" % (path, key, n))
            else:
                self._value(f, val, "%s.%s" % (path, key))

    def _value(self, f, v, path):
        if f.type in SCALARS:
            assert SCALARS[f.type](v), "%s: %r is not a %s" % (path, v, f.type)
            return
        if f.type in WELL_KNOWN:
            assert WELL_KNOWN[f.type](v), "%s: %r is not a %s" % (path, v, f.type)
            return
        if f.type.startswith("map<"):
            assert isinstance(v, dict), "%s: expected a map" % path
            return
        full = self._resolve(f.type, f.scope)
        assert full is not None, "%s: type %s is defined in a file not read" % (path, f.type)
        if full in self.enums:
            assert v in self.enums[full], "%s: %r is not a %s" % (path, v, full)
        else:
            self.check(full, v, path)
