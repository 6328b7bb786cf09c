//===- PythonLiteral.cpp - Python literals of npy headers -----------------===//
//
// A recursive-descent parser for the Python literal subset of npy headers.
//
//===----------------------------------------------------------------------===//

#include "PythonLiteral.h"

#include "moe/Runtime/Error.h"

using namespace moe::runtime;
using namespace moe::runtime::detail;

namespace {

/// A recursive-descent parser of Python literals: strings, integers, True,
/// False, None, tuples, lists and dicts, with optional trailing commas.
class LiteralParser {
public:
  LiteralParser(std::string_view text, const std::string &path)
      : text(text), path(path) {}

  /// Parses the whole text as one value.
  PyValue parse() {
    PyValue value = parseValue();
    skipSpace();
    if (pos != text.size())
      fail("unexpected text after the value");
    return value;
  }

private:
  [[noreturn]] void fail(const std::string &what) const {
    throw Error(path, "malformed npy header: " + what + " at column " +
                          std::to_string(pos + 1));
  }

  void skipSpace() {
    while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t' ||
                                 text[pos] == '\n' || text[pos] == '\r'))
      ++pos;
  }

  /// Consumes `c` after optional space if it is next.
  bool consume(char c) {
    skipSpace();
    if (pos < text.size() && text[pos] == c) {
      ++pos;
      return true;
    }
    return false;
  }

  PyValue parseValue() {
    skipSpace();
    if (pos >= text.size())
      fail("unexpected end");
    char c = text[pos];
    if (c == '\'' || c == '"')
      return parseString();
    if (c == '(')
      return parseSequence(')');
    if (c == '[')
      return parseSequence(']');
    if (c == '{')
      return parseDict();
    if (c == '-' || c == '+' || (c >= '0' && c <= '9'))
      return parseInt();
    return parseName();
  }

  PyValue parseString() {
    char quote = text[pos++];
    PyValue value;
    value.kind = PyValue::Kind::String;
    while (pos < text.size() && text[pos] != quote) {
      if (text[pos] == '\\' && pos + 1 < text.size())
        ++pos;
      value.text += text[pos++];
    }
    if (pos >= text.size())
      fail("unterminated string");
    ++pos;
    return value;
  }

  PyValue parseInt() {
    PyValue value;
    value.kind = PyValue::Kind::Int;
    bool negative = text[pos] == '-';
    if (text[pos] == '-' || text[pos] == '+')
      ++pos;
    std::size_t start = pos;
    while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
      int64_t digit = text[pos++] - '0';
      if (__builtin_mul_overflow(value.number, 10, &value.number) ||
          __builtin_add_overflow(value.number, digit, &value.number))
        fail("integer out of range");
    }
    if (pos == start)
      fail("expected a digit");
    if (pos < text.size() && (text[pos] == 'L' || text[pos] == 'l'))
      ++pos; // Python 2 long suffix.
    if (negative)
      value.number = -value.number;
    return value;
  }

  PyValue parseName() {
    std::size_t start = pos;
    while (pos < text.size() && ((text[pos] >= 'A' && text[pos] <= 'Z') ||
                                 (text[pos] >= 'a' && text[pos] <= 'z')))
      ++pos;
    std::string_view name = text.substr(start, pos - start);
    PyValue value;
    if (name == "True" || name == "False") {
      value.kind = PyValue::Kind::Bool;
      value.flag = name == "True";
    } else if (name != "None") {
      pos = start;
      fail("unexpected character");
    }
    return value;
  }

  PyValue parseSequence(char close) {
    Nesting nesting(*this);
    PyValue value;
    value.kind = PyValue::Kind::Sequence;
    while (!consume(close)) {
      value.items.push_back(parseValue());
      if (!consume(',')) {
        if (!consume(close))
          fail(std::string("expected ',' or '") + close + "'");
        break;
      }
    }
    return value;
  }

  PyValue parseDict() {
    Nesting nesting(*this);
    PyValue value;
    value.kind = PyValue::Kind::Dict;
    while (!consume('}')) {
      PyValue key = parseValue();
      if (key.kind != PyValue::Kind::String)
        fail("expected a string key");
      if (!consume(':'))
        fail("expected ':'");
      value.keys.push_back(key.text);
      value.items.push_back(parseValue());
      if (!consume(',')) {
        if (!consume('}'))
          fail("expected ',' or '}'");
        break;
      }
    }
    return value;
  }

  /// Enters a tuple, list or dict at `pos`, bounding the nesting depth so
  /// that a hostile header cannot exhaust the stack.
  struct Nesting {
    explicit Nesting(LiteralParser &parser) : parser(parser) {
      if (++parser.depth > kMaxDepth)
        parser.fail("nested too deeply");
      ++parser.pos;
    }
    ~Nesting() { --parser.depth; }
    LiteralParser &parser;
  };

  static constexpr int kMaxDepth = 32;

  std::string_view text;
  const std::string &path;
  std::size_t pos = 0;
  int depth = 0;
};

} // namespace

PyValue moe::runtime::detail::parsePythonLiteral(std::string_view text,
                                                 const std::string &path) {
  return LiteralParser(text, path).parse();
}
