"""The statement check of the read-only SQL path: one read of the project's tables, or a refusal.

A hand-written, fail-closed tokenizer (not a SQL parser; docs/internals.md says why)
cuts the text into words, quoted identifiers, string literals, query parameters and
signs, exactly as ClickHouse's lexer would for every text it accepts; anything it does
not recognise is refused. Then the rules:

- one statement (a trailing ``;`` is fine);
- the first keyword (after any opening parentheses) is ``SELECT``, ``WITH``,
  ``EXPLAIN`` (optionally ``AST``/``SYNTAX``/``PLAN``/``PIPELINE``/``ESTIMATE``/
  ``QUERY TREE``, then a ``SELECT``/``WITH`` query, no settings), ``DESCRIBE``/``DESC``
  (``[TABLE] <plain table name>`` and nothing else), or ``SHOW`` (``SHOW TABLES [LIKE
  '…']``, ``SHOW CREATE [TABLE] <name>``, ``SHOW COLUMNS FROM <name>``);
- no table function anywhere (a call of any name the engine knows as a table function,
  in any letter case) except :data:`ALLOWED_TABLE_FUNCTIONS` (numbers and zeros:
  nothing outside the engine), no function that reads the host (:data:`HOST_FUNCTIONS`,
  dictionaries, ``joinGet``), no quoted name called as a function;
- nothing of the databases ``system``, ``information_schema``, ``INFORMATION_SCHEMA``
  (they hold other sessions' query texts, settings, the host's disks and users);
- no ``SETTINGS``, ``FORMAT``, ``INTO`` (``INTO OUTFILE`` writes a file on the
  embedded engine's machine), ``PARALLEL WITH``, no ``{name:Identifier}`` parameter
  (it would put a table name in from outside the text);
- outside string literals and quoted identifiers only ASCII: look-alike letters,
  full-width signs and invisible characters are refused, and so is a comment glued
  between two letters (``fi/**/le``).

Every refusal is one line (:class:`UserError`). The engine's ``readonly = 1`` and the
limits stay the second guard (``readonly.ClientRunner``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from pipeline.config import UserError

__all__ = [
    "ALLOWED",
    "ALLOWED_TABLE_FUNCTIONS",
    "HOST_FUNCTIONS",
    "TABLE_FUNCTIONS",
    "Token",
    "check_read_only",
    "tokenize",
]

ALLOWED = ("SELECT", "WITH", "SHOW", "DESCRIBE", "DESC", "EXPLAIN")
PREFIX = "only read-only queries are allowed (SELECT, WITH, SHOW, DESCRIBE, EXPLAIN); got "
REFUSED = "query refused: "

#: Every table function of chDB 26.9 (``SELECT name FROM system.table_functions``),
#: lower case. tests/unit/test_readonly.py fails when the engine knows one more.
TABLE_FUNCTIONS = frozenset(name.lower() for name in """
SQLStandardValues arrowstream azureBlobStorage azureBlobStorageCluster bigquery cluster clusterAllReplicas
cosn deltaLake deltaLakeAzure deltaLakeAzureCluster deltaLakeCluster deltaLakeLocal deltaLakeS3
deltaLakeS3Cluster dictionary eval executable file fileCluster filesystem format fuzzJSON fuzzQuery gcs
generateRandom generateSeries generate_series hdfs hdfsCluster hudi hudiCluster iceberg icebergAzure
icebergAzureCluster icebergCluster icebergHDFS icebergHDFSCluster icebergLocal icebergLocalCluster icebergS3
icebergS3Cluster input jdbc loop merge mergeTreeAnalyzeIndexes mergeTreeAnalyzeIndexesUUID
mergeTreeCodecBlockCounts mergeTreeIndex mergeTreeProjection mergeTreeTextIndex mongodb mysql null numbers
numbers_mt odbc oss paimon paimonAzure paimonAzureCluster paimonCluster paimonHDFS paimonHDFSCluster
paimonLocal paimonS3 paimonS3Cluster postgresql primes prometheusQuery prometheusQueryRange python redis
remote remoteSecure s3 s3Cluster sqlite timeSeriesData timeSeriesMetricFamilies timeSeriesMetrics
timeSeriesSamples timeSeriesSelector timeSeriesTags url urlCluster values view viewExplain viewIfPermitted
ytsaurus zeros zeros_mt
""".split())

#: Table functions that read nothing outside the engine: rows of numbers or zeros.
ALLOWED_TABLE_FUNCTIONS = frozenset({"numbers", "numbers_mt", "zeros", "zeros_mt", "generate_series", "generateseries"})

_ALLOWED_TEXT = "numbers(), numbers_mt(), zeros(), zeros_mt(), generate_series()"

#: Ordinary functions that read the host's files, identity or configuration (lower case).
HOST_FUNCTIONS = frozenset(name.lower() for name in """
file catboostEvaluate getSetting getSettingOrDefault getServerSetting getMergeTreeSetting getMacro hostName
hostname fqdn getOSKernelVersion filesystemAvailable filesystemCapacity filesystemUnreserved filesystemFree
getServerPort tcpPort serverUUID displayName getClientHTTPHeader currentProfiles enabledProfiles
currentRoles enabledRoles defaultRoles joinGet joinGetOrNull addressToLine addressToLineWithInlines
addressToSymbol demangle
""".split())

#: Databases that are not the project's facts.
FOREIGN_DATABASES = frozenset({"system", "information_schema"})

#: Words refused wherever they stand (outside quotes), with why.
REFUSED_WORDS = {
    "SETTINGS": "SETTINGS (the limits of the SQL path are fixed)",
    "FORMAT": "FORMAT (the output format is the caller's)",
    "INTO": "INTO (INTO OUTFILE writes a file)",
    "OUTFILE": "INTO OUTFILE (writes a file)",
    "PARALLEL": "PARALLEL WITH (more than one statement)",
}

EXPLAIN_KINDS = frozenset({"AST", "SYNTAX", "PLAN", "PIPELINE", "ESTIMATE"})
_SPACE = " \t\n\r\f\v"
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*|[0-9][A-Za-z0-9_]*")
_HEREDOC_RE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)?\$")
_PARAM_RE = re.compile(r"\{[ \t]*([A-Za-z_][A-Za-z0-9_]*)[ \t]*:[ \t]*([A-Za-z0-9_(), ']+?)[ \t]*\}")
_SIGNS = "()[],.;:+-*/%<>=!?|^"


@dataclass(frozen=True, slots=True)
class Token:
    """One piece of the statement. ``kind``: ``word`` (keyword, name or number, as
    written), ``quoted`` (an identifier in double quotes or backquotes; ``text`` is its
    content), ``string`` (a literal; ``text`` empty), ``param`` (``{name:Type}``;
    ``text`` is the type) or ``sign`` (one character)."""

    kind: str
    text: str
    pos: int

    @property
    def upper(self) -> str:
        return self.text.upper() if self.kind == "word" else ""


def _refuse(why: str) -> UserError:
    return UserError(REFUSED + why)


def _is_word_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c == "_")


def _end_of_quoted(sql: str, i: int, quote: str) -> int:
    """Index just past the literal or quoted identifier opening at ``i``."""
    j, n = i + 1, len(sql)
    while True:
        if j >= n:
            raise UserError(PREFIX + f"an unterminated {quote} quote")
        c = sql[j]
        if c == "\\":
            j += 2
            continue
        if c == quote:
            if j + 1 < n and sql[j + 1] == quote:  # a doubled quote inside
                j += 2
                continue
            return j + 1
        j += 1


def _end_of_comment(sql: str, i: int) -> int:
    n = len(sql)
    if sql.startswith("/*", i):
        depth, j = 1, i + 2
        while j < n and depth:
            if sql.startswith("/*", j):
                depth, j = depth + 1, j + 2
            elif sql.startswith("*/", j):
                depth, j = depth - 1, j + 2
            else:
                j += 1
        if depth:
            raise UserError(PREFIX + "an unterminated /* comment")
        return j
    j = sql.find("\n", i)
    return n if j < 0 else j


def tokenize(sql: str) -> list[Token]:
    """The tokens of ``sql`` (comments and whitespace dropped); ``UserError`` for any
    text ClickHouse's lexer might read otherwise than this one."""
    tokens: list[Token] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        nxt = sql[i + 1] if i + 1 < n else ""
        if c in _SPACE:
            i += 1
        elif (c == "-" and nxt == "-") or (c == "#" and nxt in (" ", "!")) or (c == "/" and nxt == "*"):
            end = _end_of_comment(sql, i)
            if i > 0 and _is_word_char(sql[i - 1]) and end < n and _is_word_char(sql[end]):
                raise _refuse(f"a comment inside a word at character {i + 1}")
            i = end
        elif c == "'":
            end = _end_of_quoted(sql, i, c)
            tokens.append(Token("string", "", i))
            i = end
        elif c in ('"', "`"):
            end = _end_of_quoted(sql, i, c)
            tokens.append(Token("quoted", sql[i + 1:end - 1].replace(c + c, c), i))
            i = end
        elif c == "$" and (m := _HEREDOC_RE.match(sql, i)) is not None:
            close = sql.find(m.group(0), m.end())
            if close < 0:
                raise UserError(PREFIX + f"an unterminated {m.group(0)} string")
            tokens.append(Token("string", "", i))
            i = close + len(m.group(0))
        elif c == "{":
            m = _PARAM_RE.match(sql, i)
            if m is None:
                raise _refuse(f"a '{{' that is not a query parameter {{name:Type}} at character {i + 1}")
            if m.group(2).strip().lower() == "identifier":
                raise _refuse(f"the parameter {{{m.group(1)}:Identifier}} (a name from outside the text)")
            tokens.append(Token("param", m.group(2), i))
            i = m.end()
        elif (m := _WORD_RE.match(sql, i)) is not None:
            tokens.append(Token("word", m.group(0), i))
            i = m.end()
        elif c in _SIGNS:
            tokens.append(Token("sign", c, i))
            i += 1
        elif not c.isascii():
            raise _refuse(
                f"the character U+{ord(c):04X} at character {i + 1} outside quotes "
                "(look-alike letters, full-width signs and invisible characters are not SQL)"
            )
        else:
            raise _refuse(f"the character {c!r} at character {i + 1}")
    return tokens


def _name(token: Token | None) -> str | None:
    """The name a word or quoted identifier stands for (None for anything else)."""
    if token is None or token.kind not in ("word", "quoted"):
        return None
    if token.kind == "word" and not (token.text[0].isalpha() or token.text[0] == "_"):
        return None  # a number
    return token.text


def _check_plain_name(tokens: list[Token], what: str) -> None:
    """``tokens`` are exactly one plain table name (no database, no function)."""
    if len(tokens) != 1 or _name(tokens[0]) is None:
        raise _refuse(f"{what} only of a plain table name")
    if tokens[0].text.lower() in FOREIGN_DATABASES:
        raise _refuse(f"{what} of {tokens[0].text}")


def _check_tokens(tokens: list[Token]) -> None:
    """The rules that hold wherever a token stands (module doc)."""
    depth = 0
    for k, token in enumerate(tokens):
        following = tokens[k + 1] if k + 1 < len(tokens) else None
        if token.kind == "sign":
            if token.text in "([":
                depth += 1
            elif token.text in ")]":
                depth -= 1
                if depth < 0:
                    raise _refuse(f"an unbalanced {token.text!r} at character {token.pos + 1}")
            continue
        name = _name(token)
        if name is None:
            continue
        lower = name.lower()
        if following is not None and following.kind == "sign" and following.text == "(":
            if token.kind == "quoted":
                raise _refuse(f"a quoted name called as a function ({name!r})")
            if lower in TABLE_FUNCTIONS and lower not in ALLOWED_TABLE_FUNCTIONS:
                raise _refuse(f"the table function {name}(…): only the project's tables and {_ALLOWED_TEXT} may be read")
            if lower in HOST_FUNCTIONS or lower.startswith("dict"):
                raise _refuse(f"the function {name}(…) reads outside the project's tables")
        if token.upper in REFUSED_WORDS:
            raise _refuse(REFUSED_WORDS[token.upper])
        if lower in FOREIGN_DATABASES and following is not None and following.kind == "sign" and following.text == ".":
            raise _refuse(f"the database {name} (only the project's tables may be read)")
    if depth:
        raise _refuse("unbalanced parentheses")


def check_read_only(sql: str) -> None:
    """Raise ``UserError`` (one line) unless ``sql`` is one statement that reads the
    project's tables and nothing else (module doc)."""
    if not isinstance(sql, str):
        raise UserError(PREFIX + f"a {type(sql).__name__}, not SQL text")
    tokens = tokenize(sql)
    while tokens and tokens[-1].kind == "sign" and tokens[-1].text == ";":
        tokens.pop()
    if any(t.kind == "sign" and t.text == ";" for t in tokens):
        raise UserError(PREFIX + "more than one statement")
    k = 0
    while k < len(tokens) and tokens[k].kind == "sign" and tokens[k].text == "(":
        k += 1
    if k == len(tokens):
        raise UserError(PREFIX + ("an empty query" if not tokens else repr(sql.strip()[:20])))
    head = tokens[k]
    word = head.upper
    if word not in ALLOWED:
        shown = word or repr(head.text[:20] if head.kind != "string" else sql[head.pos:head.pos + 20])
        raise UserError(PREFIX + f"{shown} …")
    rest = tokens[k + 1:]
    _check_tokens(tokens)
    if word in ("DESCRIBE", "DESC"):
        if k:
            raise _refuse(f"{word} inside parentheses")
        if rest and rest[0].upper == "TABLE":
            rest = rest[1:]
        _check_plain_name(rest, "DESCRIBE")
    elif word == "SHOW":
        _check_show(rest, k)
    elif word == "EXPLAIN":
        if k:
            raise _refuse("EXPLAIN inside parentheses")
        if rest and rest[0].upper in EXPLAIN_KINDS:
            rest = rest[1:]
        elif len(rest) >= 2 and rest[0].upper == "QUERY" and rest[1].upper == "TREE":
            rest = rest[2:]
        j = 0
        while j < len(rest) and rest[j].kind == "sign" and rest[j].text == "(":
            j += 1
        if j == len(rest) or rest[j].upper not in ("SELECT", "WITH"):
            raise _refuse("EXPLAIN only of a SELECT or WITH query, without settings")


def _check_show(rest: list[Token], parentheses: int) -> None:
    words = [t.upper for t in rest]
    if parentheses:
        raise _refuse("SHOW inside parentheses")
    if words == ["TABLES"] or (words[:2] == ["TABLES", "LIKE"] and len(rest) == 3 and rest[2].kind == "string"):
        return
    if words[:1] == ["CREATE"]:
        names = rest[2:] if words[1:2] == ["TABLE"] else rest[1:]
        _check_plain_name(names, "SHOW CREATE")
        return
    if words[:2] == ["COLUMNS", "FROM"]:
        _check_plain_name(rest[2:], "SHOW COLUMNS")
        return
    raise _refuse("SHOW only as SHOW TABLES [LIKE '…'], SHOW CREATE TABLE <name> or SHOW COLUMNS FROM <name>")
