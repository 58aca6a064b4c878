"""Compiled Avro decoders: bytes -> dataclasses, in one pass (see ``events._avro``).

Each ``_dec_<kind>`` returns the source lines that read one value at position ``p`` of
the bytes ``b`` (length ``L``) into a local variable. Bytes that do not fit raise
``Corrupt`` (or ``IndexError`` when the message ends early, ``UnicodeDecodeError``…);
the codec turns all of them into ``DecodeError``. Arrays become tuples.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields as dataclass_fields
from typing import Any

from orchestrator.events._avro import Compiler, Decoder, init_fields, short_name

_Generator = Callable[[Compiler, Any, str, str], list[str]]


def _read_long(z: str, i: str) -> list[str]:
    return [
        f"{i}x = b[p]",
        f"{i}p += 1",
        f"{i}if x > 127:",
        f"{i}    x, p = _read_varint(b, p, x)",
        f"{i}{z} = (x >> 1) ^ -(x & 1)",
    ]


def _dec_null(c: Compiler, schema: Any, v: str, i: str) -> list[str]:
    return [f"{i}{v} = None"]


def _dec_boolean(c: Compiler, schema: Any, v: str, i: str) -> list[str]:
    return [
        f"{i}x = b[p]",
        f"{i}p += 1",
        f"{i}if x > 1:",
        f"{i}    raise _Corrupt(f'boolean byte {{x}}')",
        f"{i}{v} = x == 1",
    ]


def _dec_long(c: Compiler, schema: Any, v: str, i: str) -> list[str]:
    return _read_long(v, i)


def _dec_timestamp_micros(c: Compiler, schema: Any, v: str, i: str) -> list[str]:
    return [*_read_long(v, i), f"{i}{v} = _EPOCH + _td(0, 0, {v})"]


def _dec_double(c: Compiler, schema: Any, v: str, i: str) -> list[str]:
    return [f"{i}{v} = _unpack_d(b, p)[0]", f"{i}p += 8"]


def _dec_bytes(c: Compiler, schema: Any, v: str, i: str, decode: str = "") -> list[str]:
    return [
        *_read_long("n", i),
        f"{i}e = p + n",
        f"{i}if not p <= e <= L:",
        f"{i}    raise _Corrupt(f'length {{n}} at byte {{p}} runs past the end')",
        f"{i}{v} = b[p:e]{decode}",
        f"{i}p = e",
    ]


def _dec_string(c: Compiler, schema: Any, v: str, i: str) -> list[str]:
    return _dec_bytes(c, schema, v, i, ".decode()")


def _dec_enum(c: Compiler, schema: Any, v: str, i: str) -> list[str]:
    symbols = schema["symbols"]
    return [
        *_read_long("n", i),
        f"{i}if not 0 <= n < {len(symbols)}:",
        f"{i}    raise _Corrupt(f'enum index {{n}} out of range')",
        f"{i}{v} = {c.const(tuple(symbols))}[n]",
    ]


def _may_be_empty(c: Compiler, schema: Any) -> bool:
    schema = c.resolve(schema)
    if c.kind(schema) == "record":
        return all(_may_be_empty(c, f["type"]) for f in schema["fields"])
    return c.kind(schema) == "null"


def _dec_array(c: Compiler, schema: Any, v: str, i: str) -> list[str]:
    # Each item takes at least one byte, so a count beyond the bytes left is corrupt
    # (and cannot make us loop for long or allocate much).
    if _may_be_empty(c, schema["items"]):
        raise TypeError(f"unsupported array of items that may encode to no bytes: {schema}")
    items, count, item = c.var("a"), c.var("c"), c.var("w")
    return [
        f"{i}{items} = []",
        f"{i}while True:",
        *_read_long(count, i + "    "),
        f"{i}    if {count} == 0:",
        f"{i}        break",
        f"{i}    if {count} < 0:  # a block that also gives its size in bytes",
        f"{i}        {count} = -{count}",
        *_read_long("n", i + "        "),
        f"{i}    if {count} > L - p:",
        f"{i}        raise _Corrupt(f'array of {{{count}}} items runs past the end')",
        f"{i}    for _ in range({count}):",
        *decode_value(c, schema["items"], item, i + "        "),
        f"{i}        {items}.append({item})",
        f"{i}{v} = tuple({items})",
    ]


def _dec_record(c: Compiler, schema: Any, v: str, i: str) -> list[str]:
    return [f"{i}{v}, p = {c.function_for(schema)}(b, p)"]


def _dec_union(c: Compiler, union: Any, v: str, i: str) -> list[str]:
    # An index below 64 is one byte holding 2 * index; a longer varint is out of range.
    c.union_parts(union)
    lines = [f"{i}x = b[p]", f"{i}p += 1"]
    out_of_range = f"{i}    raise _Corrupt(f'union index byte {{x}} out of range')"
    branches = [c.resolve(s) for s in union]
    if all(c.kind(s) == "record" for s in branches):
        table = c.var("_u")
        c.post.append(f"{table} = ({', '.join(c.function_for(s) for s in branches)},)")
        return [
            *lines,
            f"{i}if x & 1 or x >= {2 * len(branches)}:",
            out_of_range,
            f"{i}{v}, p = {table}[x >> 1](b, p)",
        ]
    for n, branch in enumerate(branches):
        lines.append(f"{i}{'elif' if n else 'if'} x == {2 * n}:")
        lines += decode_value(c, branch, v, i + "    ")
    return [*lines, f"{i}else:", out_of_range]


_GENERATORS: dict[str, _Generator] = {
    "null": _dec_null,
    "boolean": _dec_boolean,
    "int": _dec_long,
    "long": _dec_long,
    "long-timestamp-micros": _dec_timestamp_micros,
    "double": _dec_double,
    "bytes": _dec_bytes,
    "string": _dec_string,
    "string-uuid": _dec_string,
    "enum": _dec_enum,
    "array": _dec_array,
    "record": _dec_record,
    "union": _dec_union,
}


def decode_value(c: Compiler, schema: Any, v: str, i: str) -> list[str]:
    """Lines that read one value of ``schema`` at ``p`` into the local ``v``."""
    generator = _GENERATORS.get(c.kind(schema))
    if generator is None:
        raise TypeError(f"unsupported Avro type {schema!r}")
    return generator(c, c.resolve(schema), v, i)


def _slot_setters(cls: type, given: list[str]) -> dict[str, Any] | None:
    """The slot of each field, when building ``cls`` field by field is what its
    ``__init__`` would do: a slots dataclass without ``__post_init__`` whose every
    field is an init field the schema gives. ``None`` otherwise (call ``__init__``)."""
    fields = dataclass_fields(cls)
    names = {f.name for f in fields}
    if (
        hasattr(cls, "__post_init__")
        or any(not f.init for f in fields)
        or set(getattr(cls, "__slots__", ())) != names
        or set(given) != names
    ):
        return None
    return {name: getattr(cls, name).__set__ for name in given}


def _record_function(c: Compiler, record: Mapping[str, Any]) -> list[str]:
    """Read every field, build the dataclass; a field that is a property must agree."""
    cls = c.cls(record)
    takes = init_fields(cls)
    lines = [f"def {c.prefix}{short_name(record['name'])}(b, p):", "    L = len(b)"]
    kwargs, checks, given = [], [], []
    for field in record["fields"]:
        name, v = c.field_name(field), c.var("v")
        lines += decode_value(c, field["type"], v, "    ")
        if name in takes:
            kwargs.append(f"{name}={v}")
            given.append((name, v))
        elif isinstance(getattr(cls, name, None), property):
            checks.append((name, v))
    setters = _slot_setters(cls, [name for name, _ in given])
    if setters is None:
        lines.append(f"    o = {c.const(cls)}({', '.join(kwargs)})")
    else:  # the frozen __init__ assigns through object.__setattr__: this is ~2x faster
        lines.append(f"    o = {c.const(object.__new__)}({c.const(cls)})")
        lines += [f"    {c.const(setters[name])}(o, {v})" for name, v in given]
    for name, v in checks:
        lines += [
            f"    if o.{name} != {v}:",
            f"        raise _Corrupt(f'{name} {{{v}!r}} does not match {{o.{name}!r}}')",
        ]
    lines.append("    return o, p")
    return lines


def compile_decoder(schema: Any, classes: Mapping[str, type]) -> Decoder:
    """A decoder ``(data, pos) -> (obj, end)`` building ``classes`` by record name."""
    decoder: Decoder = Compiler(schema, classes, "_dec_").build(_record_function)
    return decoder
