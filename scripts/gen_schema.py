#!/usr/bin/env python3
"""Generate ``schema/_schema_desc.py`` from LiteRT's ``schema.fbs``.

Usage::

    python scripts/gen_schema.py path/to/schema.fbs > schema/_schema_desc.py

``schema.fbs`` lives in google-ai-edge/LiteRT at
``tflite/converter/schema/schema.fbs``; it is not committed here. The output is a
plain-data description of every enum, union and table (field names, vtable slots,
types, defaults) that drives quantcore's generic FlatBuffer reader and writer
(``schema/_flatbuf.py``), so no generated accessor code is needed.

The parser understands the subset of the FlatBuffers IDL that schema.fbs uses:
``namespace``, ``enum NAME : type { A = 0, B, }``, ``union NAME { A, B }``,
``table NAME { field: type (attrs) = default; }``, ``root_type``,
``file_identifier``, ``file_extension``, ``attribute``, comments.
"""
from __future__ import annotations

import pprint
import re
import sys

SCALARS = {
    "bool": "bool", "byte": "int8", "ubyte": "uint8", "short": "int16",
    "ushort": "uint16", "int": "int32", "uint": "uint32", "long": "int64",
    "ulong": "uint64", "float": "float32", "double": "float64",
    "int8": "int8", "uint8": "uint8", "int16": "int16", "uint16": "uint16",
    "int32": "int32", "uint32": "uint32", "int64": "int64", "uint64": "uint64",
    "float32": "float32", "float64": "float64",
}

TOKEN = re.compile(r'\s*(?:(//[^\n]*)|("[^"]*")|([A-Za-z_][A-Za-z0-9_.]*)|(-?[0-9][0-9.eE+-]*)|(.))', re.S)


def tokenize(text: str) -> list[str]:
    out = []
    pos = 0
    while pos < len(text):
        m = TOKEN.match(text, pos)
        if not m or m.end() == pos:
            break
        pos = m.end()
        if m.group(1):
            continue
        tok = next(g for g in m.groups()[1:] if g is not None)
        if tok.strip():
            out.append(tok)
    return out


class Parser:
    def __init__(self, tokens: list[str]):
        self.t = tokens
        self.i = 0
        self.enums: dict = {}
        self.unions: dict = {}
        self.tables: dict = {}
        self.deprecated_tables: set = set()
        self.root_type = None
        self.file_identifier = None

    def peek(self) -> str:
        return self.t[self.i]

    def next(self) -> str:
        tok = self.t[self.i]
        self.i += 1
        return tok

    def expect(self, tok: str) -> None:
        got = self.next()
        if got != tok:
            raise SyntaxError(f"expected {tok!r}, got {got!r} at token {self.i}")

    def attrs(self) -> dict:
        out = {}
        if self.peek() != "(":
            return out
        self.next()
        while self.peek() != ")":
            key = self.next()
            val = True
            if self.peek() == ":":
                self.next()
                val = self.next()
            out[key] = val
            if self.peek() == ",":
                self.next()
        self.next()
        return out

    def parse(self) -> None:
        while self.i < len(self.t):
            kw = self.next()
            if kw in ("namespace", "file_extension", "attribute", "include"):
                while self.next() != ";":
                    pass
            elif kw == "file_identifier":
                self.file_identifier = self.next().strip('"')
                self.expect(";")
            elif kw == "root_type":
                self.root_type = self.next()
                self.expect(";")
            elif kw == "enum":
                self.parse_enum()
            elif kw == "union":
                self.parse_union()
            elif kw == "table":
                self.parse_table()
            elif kw == "struct":
                raise SyntaxError("structs are not used by schema.fbs and not supported")
            else:
                raise SyntaxError(f"unexpected token {kw!r}")

    def parse_enum(self) -> None:
        name = self.next()
        self.expect(":")
        base = SCALARS[self.next()]
        self.attrs()
        self.expect("{")
        values = {}
        nxt = 0
        while self.peek() != "}":
            key = self.next()
            if self.peek() == "=":
                self.next()
                nxt = int(self.next())
            self.attrs()
            values[key] = nxt
            nxt += 1
            if self.peek() == ",":
                self.next()
        self.next()
        self.enums[name] = (base, values)

    def parse_union(self) -> None:
        name = self.next()
        self.expect("{")
        members = ["NONE"]
        while self.peek() != "}":
            members.append(self.next())
            self.attrs()
            if self.peek() == ",":
                self.next()
        self.next()
        self.unions[name] = members

    def parse_table(self) -> None:
        name = self.next()
        if self.attrs().get("deprecated"):
            self.deprecated_tables.add(name)
        self.expect("{")
        fields = []
        slot = 0
        while self.peek() != "}":
            fname = self.next()
            self.expect(":")
            if self.peek() == "[":
                self.next()
                elem = self.next()
                self.expect("]")
                is_vector = True
            else:
                elem = self.next()
                is_vector = False
            default = None
            if self.peek() == "=":
                self.next()
                default = self.next()
            attrs = self.attrs()
            self.expect(";")
            fields.append(dict(name=fname, type=elem, vector=is_vector, default=default,
                               deprecated=bool(attrs.get("deprecated")),
                               align=int(attrs.get("force_align", 0) or 0), slot=slot))
            slot += 1
        self.next()
        self.tables[name] = fields

    def resolve(self) -> dict:
        """Turn raw fields into (name, slot, kind, elem, default, deprecated, align) rows.

        kind is one of: scalar, enum, string, table, union_type, union,
        vector_scalar, vector_enum, vector_string, vector_table.
        A union field takes two slots: ``<name>_type`` (uint8) then the value.
        """
        tables = {}
        for tname, fields in self.tables.items():
            rows = []
            slot = 0
            for f in fields:
                t = f["type"]
                if t in self.unions:
                    if f["vector"]:
                        raise SyntaxError("vectors of unions are not supported")
                    rows.append((f["name"] + "_type", slot, "union_type", t, 0, f["deprecated"], 0))
                    rows.append((f["name"], slot + 1, "union", t, None, f["deprecated"], 0))
                    slot += 2
                    continue
                if t in SCALARS:
                    kind, elem = "scalar", SCALARS[t]
                    default = parse_scalar_default(elem, f["default"])
                elif t in self.enums:
                    kind, elem = "enum", t
                    base, values = self.enums[t]
                    d = f["default"]
                    default = 0 if d is None else (values[d] if d in values else int(d))
                elif t == "string":
                    kind, elem, default = "string", "string", None
                elif t in self.tables:
                    kind, elem, default = "table", t, None
                else:
                    raise SyntaxError(f"{tname}.{f['name']}: unknown type {t}")
                if f["vector"]:
                    kind = "vector_" + kind
                    default = None
                rows.append((f["name"], slot, kind, elem, default, f["deprecated"], f["align"]))
                slot += 1
            tables[tname] = rows
        return tables


def parse_scalar_default(elem: str, text):
    if elem == "bool":
        return text == "true"
    if text is None:
        return 0.0 if elem.startswith("float") else 0
    if elem.startswith("float"):
        return float(text)
    return int(text)


def main(path: str) -> None:
    with open(path, encoding="utf-8") as fh:
        parser = Parser(tokenize(fh.read()))
    parser.parse()
    tables = parser.resolve()
    print('"""Description of LiteRT\'s schema.fbs, generated by scripts/gen_schema.py. Do not edit.')
    print()
    print("ENUMS: name -> (underlying scalar type, {member: value})")
    print("UNIONS: name -> [member table names], index = union type value (0 = NONE)")
    print("TABLES: name -> [(field, vtable slot, kind, element type, default, deprecated, force_align)]")
    print('"""')
    print(f"FILE_IDENTIFIER = {parser.file_identifier!r}")
    print(f"ROOT_TYPE = {parser.root_type!r}")
    print("ENUMS = " + pprint.pformat(parser.enums, width=100, sort_dicts=False))
    print("UNIONS = " + pprint.pformat(parser.unions, width=100, sort_dicts=False))
    print("TABLES = " + pprint.pformat(tables, width=100, sort_dicts=False))
    print("DEPRECATED_TABLES = " + pprint.pformat(sorted(parser.deprecated_tables)))


if __name__ == "__main__":
    main(sys.argv[1])
