"""Compiled Avro encoders: dataclass -> checked -> bytes, in one pass (see ``events._avro``).

Each ``_enc_<kind>`` returns the source lines that check the value in local ``v`` and
append its encoding to the bytearray ``out``; ``part`` is a Python expression naming
the value in an error path (``'attempt'``, ``f'[{i}]'``). A wrong value raises
``Mismatch(part, "expected int, got str")``; enclosing records prepend their parts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from orchestrator.events._avro import INT_RANGE, Compiler, Encoder, short_name, zigzag

VARINT_TABLE = 4096
VARINTS = tuple(zigzag(n) for n in range(-VARINT_TABLE, VARINT_TABLE))
"""The encodings of -4096..4095 (one or two bytes): ``VARINTS[n + VARINT_TABLE]``. Sizes,
sequences and counts fall in it; ``zigzag`` is a call and a tuple for each."""
TS_LOW, TS_HIGH = 2**48, 2**55
"""Longs whose zig-zag varint is 8 bytes (1978 to 3111 in timestamp-micros)."""
LOW7 = tuple(bytes((b | 0x80,)) for b in range(128))
"""A varint's non-final byte holding the 7 bits ``b``."""
CACHED_STRINGS = 4096
"""Entries of an encoder's string cache; full, it starts again empty."""
CACHED_STRING_BYTES = 96
"""Only strings up to this many UTF-8 bytes are cached (ids, names, types)."""


class _Value:
    """What every generator needs: the compiler, the value, its path part, the indent."""

    __slots__ = ("c", "ind", "opt", "part", "v")

    def __init__(self, c: Compiler, v: str, part: str, ind: str, nullable: bool) -> None:
        self.c, self.v, self.part, self.ind = c, v, part, ind
        self.opt = " or None" if nullable else ""

    def bad(self, expected: str) -> str:
        """The line raising 'expected X, got T', one level in."""
        message = f"f'expected {expected}{self.opt}, got {{_tn({self.v})}}'"
        return f"{self.ind}    raise _Mismatch({self.part}, {message})"

    def fail(self, message: str) -> str:
        """The line raising ``message`` (an f-string expression), one level in."""
        return f"{self.ind}    raise _Mismatch({self.part}, {message})"


def _enc_null(x: _Value, schema: Any) -> list[str]:
    return [f"{x.ind}if {x.v} is not None:", x.bad("None")]


def _enc_boolean(x: _Value, schema: Any) -> list[str]:
    i, v = x.ind, x.v
    return [
        f"{i}if {v} is True:",
        f"{i}    out += b'\\x01'",
        f"{i}elif {v} is False:",
        f"{i}    out += b'\\x00'",
        f"{i}else:",
        x.bad("bool"),
    ]


def _write_long(x: _Value, bits: str) -> list[str]:
    i, v = x.ind, x.v
    low, high = INT_RANGE[bits]
    return [
        f"{i}if -{VARINT_TABLE} <= {v} < {VARINT_TABLE}:",
        f"{i}    out += _VARINTS[{v} + {VARINT_TABLE}]",
        f"{i}elif {low} <= {v} <= {high}:",
        f"{i}    out += _zigzag({v})",
        f"{i}else:",
        x.fail(f"f'expected int in [{low}, {high}], got {{{v}}}'"),
    ]


def _enc_int(x: _Value, schema: Any, bits: str = "int") -> list[str]:
    v = x.v
    not_int = f"(not isinstance({v}, int) or {v} is True or {v} is False)"
    return [
        f"{x.ind}if {v}.__class__ is not int and {not_int}:",
        x.bad("int"),
        *_write_long(x, bits),
    ]


def _enc_long(x: _Value, schema: Any) -> list[str]:
    return _enc_int(x, schema, "long")


def _enc_timestamp_micros(x: _Value, schema: Any) -> list[str]:
    """Microseconds of this era are 8-byte varints whose upper 5 bytes change about once
    a second: those come from a one-entry cache (``_TS[0]``: ``micros >> 20`` and its
    bytes, one tuple so threads never see half of it), the lower 3 from ``_LOW7``;
    others go through ``_write_long``."""
    i, v, d, z, t = x.ind, x.v, x.c.var("d"), x.c.var("z"), x.c.var("t")
    return [
        f"{i}if not isinstance({v}, _datetime):",
        x.bad("datetime"),
        f"{i}if {v}.tzinfo is None:",
        x.fail("'expected a timezone-aware datetime, got a naive one'"),
        f"{i}{d} = {v} - _EPOCH",
        f"{i}{v} = ({d}.days * 86400 + {d}.seconds) * 1000000 + {d}.microseconds",
        f"{i}{t} = _TS[0]",
        f"{i}if {v} >> 20 == {t}[0]:",
        f"{i}    {z} = {v} << 1",
        f"{i}    out += _LOW7[{z} & 0x7F]",
        f"{i}    out += _LOW7[{z} >> 7 & 0x7F]",
        f"{i}    out += _LOW7[{z} >> 14 & 0x7F]",
        f"{i}    out += {t}[1]",
        f"{i}else:",
        *_write_long(_Value(x.c, v, x.part, i + "    ", False), "long"),
        f"{i}    if {TS_LOW} <= {v} < {TS_HIGH}:",
        f"{i}        _TS[0] = ({v} >> 20, _zigzag({v})[3:])",
    ]


def _enc_double(x: _Value, schema: Any) -> list[str]:
    i, v = x.ind, x.v
    return [
        f"{i}if {v}.__class__ is not float:",
        f"{i}    if not isinstance({v}, (int, float)) or {v} is True or {v} is False:",
        "    " + x.bad("float"),
        f"{i}    try:",
        f"{i}        {v} = float({v})",
        f"{i}    except OverflowError:",
        "        " + x.fail(f"f'{{{v}}} is too large for a double'"),
        f"{i}out += _pack_d({v})",
    ]


def _write_bytes(x: _Value) -> list[str]:
    i = x.ind
    return [
        f"{i}n = len(bs)",
        f"{i}out += _VARINTS[n + {VARINT_TABLE}] if n < {VARINT_TABLE} else _zigzag(n)",
        f"{i}out += bs",
    ]


def _enc_bytes(x: _Value, schema: Any) -> list[str]:
    check = [f"{x.ind}if {x.v}.__class__ is not bytes:", x.bad("bytes")]
    return [*check, f"{x.ind}bs = {x.v}", *_write_bytes(x)]


def _enc_string(x: _Value, schema: Any, uuid: bool = False) -> list[str]:
    i, v = x.ind, x.v
    lines = [f"{i}if {v}.__class__ is not str and not isinstance({v}, str):", x.bad("str")]
    if uuid:
        lines += [
            f"{i}if _uuid({v}) is None:",
            x.fail(f"f'expected a lower-case UUID string, got {{{v}!r}}'"),
        ]
    return [
        *lines,
        f"{i}try:",
        f"{i}    bs = {v}.encode()",
        f"{i}except UnicodeEncodeError as exc:",
        x.fail("f'not encodable as UTF-8: {exc}'") + " from None",
        *_write_bytes(x),
    ]


def _enc_cached_string(x: _Value, schema: Any) -> list[str]:
    """A string through the encoder's cache of short strings (ids, names, types): a
    dict look-up instead of check, encode and length prefix. A value enters the cache
    only after passing the checks; a str subclass never does."""
    i, v = x.ind, x.v
    inner = _Value(x.c, v, x.part, i + "    ", False)
    inner.opt = x.opt
    b = x.c.var("b")
    return [
        f"{i}{b} = _STRINGS.get({v}) if {v}.__class__ is str else None",
        f"{i}if {b} is None:",
        *_enc_string(inner, schema),
        f"{i}    if n <= {CACHED_STRING_BYTES} and {v}.__class__ is str:",
        f"{i}        if len(_STRINGS) >= {CACHED_STRINGS}:",
        f"{i}            _STRINGS.clear()",
        f"{i}        _STRINGS[{v}] = _VARINTS[n + {VARINT_TABLE}] + bs",
        f"{i}else:",
        f"{i}    out += {b}",
    ]


def _enc_uuid(x: _Value, schema: Any) -> list[str]:
    return _enc_string(x, schema, uuid=True)


def _enc_enum(x: _Value, schema: Any) -> list[str]:
    i, v, e = x.ind, x.v, x.c.var("e")
    table = x.c.const({s: zigzag(n) for n, s in enumerate(schema["symbols"])})
    return [
        f"{i}{e} = {table}.get({v}) if {v}.__class__ is str else None",
        f"{i}if {e} is None:",
        x.bad(f"one of {', '.join(schema['symbols'])}"),
        f"{i}out += {e}",
    ]


def _enc_array(x: _Value, schema: Any) -> list[str]:
    i, v = x.ind, x.v
    index, item = x.c.var("i"), x.c.var("x")
    inner = _Value(x.c, item, f"f'[{{{index}}}]'", i + "            ", False)
    return [
        f"{i}if {v}.__class__ is not tuple and {v}.__class__ is not list:",
        x.bad("tuple"),
        f"{i}if {v}:",
        f"{i}    n = len({v})",
        f"{i}    out += _VARINTS[n + {VARINT_TABLE}] if n < {VARINT_TABLE} else _zigzag(n)",
        f"{i}    try:",
        f"{i}        for {index}, {item} in enumerate({v}):",
        *encode_value(inner, schema["items"]),
        f"{i}    except _Mismatch as exc:",
        f"{i}        exc.parts.insert(0, {x.part})",
        f"{i}        raise",
        f"{i}out += b'\\x00'",
    ]


def _call_record(x: _Value, call: str) -> list[str]:
    """Call a record's function; a Mismatch inside gets this value's part prepended."""
    i = x.ind
    return [
        f"{i}try:",
        f"{i}    {call}",
        f"{i}except _Mismatch as exc:",
        f"{i}    exc.parts.insert(0, {x.part})",
        f"{i}    raise",
    ]


def _enc_record(x: _Value, schema: Any) -> list[str]:
    return _call_record(x, f"{x.c.function_for(schema)}({x.v}, out)")


def _enc_union(x: _Value, union: list[Any]) -> list[str]:
    c, v, inner = x.c, x.v, x.ind + "    "
    has_null, records, others = c.union_parts(union)
    index = {c.branch_name(s): zigzag(n) for n, s in enumerate(union)}
    cases: list[tuple[str | None, list[str]]] = []  # (condition, body); None is "else"
    if has_null:
        cases.append((f"{v} is None", [f"{inner}out += {index['null']!r}"]))
    if records:
        table, f = c.var("_u"), c.var("f")
        entries = (
            f"{c.const(c.cls(r))}: ({index[r['name']]!r}, {c.function_for(r)})" for r in records
        )
        c.post.append(f"{table} = {{{', '.join(entries)}}}")
        call = _call_record(_Value(c, v, x.part, inner, False), f"{f}[1]({v}, out)")
        body = [f"{inner}{f} = {table}[{v}.__class__]", f"{inner}out += {f}[0]", *call]
        cases.append((f"{v}.__class__ in {table}", body))
    if others:
        body = [f"{inner}out += {index[c.branch_name(others[0])]!r}"]
        body += encode_value(_Value(c, v, x.part, inner, has_null), others[0])
    else:
        names = [short_name(r["name"]) for r in records] + (["None"] if has_null else [])
        body = [
            f"{inner}raise _Mismatch({x.part}, f'expected {' or '.join(names)}, got {{_tn({v})}}')"
        ]
    cases.append((None, body))
    lines = []
    for n, (condition, body) in enumerate(cases):
        if condition is None:
            head = "else:" if n else "if True:"
        else:
            head = f"{'elif' if n else 'if'} {condition}:"
        lines += [x.ind + head, *body]
    return lines


_GENERATORS: dict[str, Callable[[_Value, Any], list[str]]] = {
    "null": _enc_null,
    "boolean": _enc_boolean,
    "int": _enc_int,
    "long": _enc_long,
    "long-timestamp-micros": _enc_timestamp_micros,
    "double": _enc_double,
    "bytes": _enc_bytes,
    "string": _enc_cached_string,
    "string-uuid": _enc_uuid,
    "enum": _enc_enum,
    "array": _enc_array,
    "record": _enc_record,
    "union": _enc_union,
}


def encode_value(x: _Value, schema: Any) -> list[str]:
    """Lines that check ``x.v`` against ``schema`` and append its encoding to ``out``."""
    generator = _GENERATORS.get(x.c.kind(schema))
    if generator is None:
        raise TypeError(f"unsupported Avro type {schema!r}")
    return generator(x, x.c.resolve(schema))


def _record_function(c: Compiler, record: Mapping[str, Any]) -> list[str]:
    cls = c.cls(record)
    lines = [
        f"def {c.prefix}{short_name(record['name'])}(o, out):",
        f"    if o.__class__ is not {c.const(cls)}:",
        f"        raise _Mismatch(None, f'expected {cls.__name__}, got {{_tn(o)}}')",
    ]
    for field in record["fields"]:
        name = c.field_name(field)
        if name not in getattr(cls, "__dataclass_fields__", {}) and not hasattr(cls, name):
            raise TypeError(f"{cls.__name__} has no attribute for Avro field {name}")
        v = c.var("v")
        lines.append(f"    {v} = o.{name}")
        lines += encode_value(_Value(c, v, repr(name), "    ", False), field["type"])
    return lines


def compile_encoder(schema: Any, classes: Mapping[str, type]) -> Encoder:
    """An encoder ``(obj, out)`` appending ``obj``'s encoding; raises ``Mismatch``."""
    compiler = Compiler(schema, classes, "_enc_")
    compiler.env.update(_VARINTS=VARINTS, _STRINGS={}, _LOW7=LOW7, _TS=[(None, b"")])
    encoder: Encoder = compiler.build(_record_function)
    return encoder
