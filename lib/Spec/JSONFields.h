//===- JSONFields.h - Field readers shared by the spec parsers --*- C++ -*-===//
//
// Internal helpers of the MoESpec library: strict JSON parsing with
// line:column diagnostics, and typed readers for the fields of a JSON object
// that produce the one-line messages of the layer-spec and Hugging Face
// config parsers. Readers throw `InputError`; `guarded` turns it into a
// `SpecResult`, so nothing thrown here ever leaves the public API.
//
//===----------------------------------------------------------------------===//

#ifndef MOE_LIB_SPEC_JSONFIELDS_H
#define MOE_LIB_SPEC_JSONFIELDS_H

#include "moe/Spec/LayerSpec.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <initializer_list>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>

namespace moe::spec::detail {

/// Objects keep their document order, so the first unknown field reported is
/// the first one in the file.
using JSON = nlohmann::ordered_json;

/// Upper bound on `d_model`, `d_ff` and `num_experts` (and their Hugging Face
/// spellings): larger values are taken to be mistakes, not layers.
inline constexpr int64_t kMaxDimension = int64_t(1) << 24;

/// A problem with the input. `location` is `:<line>:<col>` for JSON syntax
/// errors and empty otherwise; `message` is the text after `error: `.
struct InputError {
  std::string location;
  std::string message;
};

[[noreturn]] inline void fail(std::string message) {
  throw InputError{std::string(), std::move(message)};
}

[[noreturn]] inline void failField(std::string_view field,
                                   std::string_view message) {
  fail("field '" + std::string(field) + "': " + std::string(message));
}

/// Shortens `text` to at most `limit` bytes without splitting a UTF-8
/// sequence, marking the cut with `...`.
inline std::string truncated(std::string text, std::size_t limit = 48) {
  if (text.size() <= limit)
    return text;
  std::size_t cut = limit - 3;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80)
    --cut;
  text.resize(cut);
  return text + "...";
}

/// A JSON value as it would be written, on one line, for "got ..." messages.
inline std::string describe(const JSON &value) {
  return truncated(
      value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

/// `name` in single quotes with control characters escaped as in JSON, for
/// messages that quote a key or an enumerator.
inline std::string singleQuoted(const std::string &name) {
  std::string text =
      JSON(name).dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  return "'" + truncated(text.substr(1, text.size() - 2)) + "'";
}

/// "a string", "an array", ... for messages about the kind of a value.
inline std::string kindOf(const JSON &value) {
  switch (value.type()) {
  case JSON::value_t::null:
    return "null";
  case JSON::value_t::boolean:
    return "a boolean";
  case JSON::value_t::string:
    return "a string";
  case JSON::value_t::array:
    return "an array";
  case JSON::value_t::object:
    return "an object";
  default:
    return "a number";
  }
}

/// Converts a byte offset into `:<line>:<col>` (both 1-based, columns in
/// bytes). An offset at the end of the text points just past its last byte.
inline std::string lineAndColumn(std::string_view text, std::size_t offset) {
  offset = std::min(offset, text.size());
  std::string_view before = text.substr(0, offset);
  std::size_t line = 1 + static_cast<std::size_t>(
                             std::count(before.begin(), before.end(), '\n'));
  std::size_t lineStart = before.rfind('\n');
  std::size_t column =
      lineStart == std::string_view::npos ? offset + 1 : offset - lineStart;
  return ":" + std::to_string(line) + ":" + std::to_string(column);
}

/// Drops nlohmann's exception tag and its own position from `what`, and the
/// generic "syntax error while parsing X - " lead-in, keeping the reason.
inline std::string shortReason(std::string what) {
  std::size_t tag = what.find("] ");
  if (tag != std::string::npos)
    what.erase(0, tag + 2);
  if (what.rfind("parse error", 0) == 0) {
    std::size_t colon = what.find(": ");
    if (colon != std::string::npos)
      what.erase(0, colon + 2);
  }
  if (what.rfind("syntax error while parsing ", 0) == 0) {
    std::size_t dash = what.find(" - ");
    if (dash != std::string::npos)
      what.erase(0, dash + 3);
  }
  return what;
}

/// A SAX pass that accepts exactly what `JSON::parse` accepts, remembering
/// where the first syntax error is and which top-level key repeats, if any.
class SyntaxCheck final : public nlohmann::json_sax<JSON> {
public:
  explicit SyntaxCheck(std::string_view input) : text(input) {}

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t &) override { return true; }
  bool string(string_t &) override { return true; }
  bool binary(binary_t &) override { return true; }
  bool start_object(std::size_t) override { return ++depth, true; }
  bool end_object() override { return --depth, true; }
  bool start_array(std::size_t) override { return ++depth, true; }
  bool end_array() override { return --depth, true; }

  bool key(string_t &name) override {
    if (depth != 1 || topLevelKeys.insert(name).second)
      return true;
    error = InputError{std::string(), "duplicate field " + singleQuoted(name)};
    return false;
  }

  bool parse_error(std::size_t position, const std::string &lastToken,
                   const JSON::exception &ex) override {
    // Syntax errors count the offending byte; a number that overflows ends
    // at `position`, so point at its first byte instead.
    std::size_t offset = position > 0 ? position - 1 : 0;
    if (ex.id == 406 && lastToken.size() <= position)
      offset = position - lastToken.size();
    error = InputError{lineAndColumn(text, offset),
                       "invalid JSON: " + shortReason(ex.what())};
    return false;
  }

  std::optional<InputError> error;

private:
  std::string_view text;
  int depth = 0;
  std::set<std::string> topLevelKeys;
};

/// Parses `text`, which must hold one JSON object and nothing else.
inline JSON parseObject(std::string_view text) {
  SyntaxCheck check(text);
  if (!JSON::sax_parse(text.begin(), text.end(), &check)) {
    if (check.error)
      throw *check.error;
    fail("invalid JSON");
  }
  JSON document = JSON::parse(text.begin(), text.end());
  if (!document.is_object())
    fail("expected a JSON object at the top level, got " + kindOf(document));
  return document;
}

/// Looks up the fields of one JSON object by name.
class Fields {
public:
  explicit Fields(const JSON &value) : object(value) {}

  /// The value of `name`, or null when the field is absent.
  const JSON *find(std::string_view name) const {
    auto it = object.find(std::string(name));
    return it == object.end() ? nullptr : &*it;
  }

  /// The value of `name`; an error when absent.
  const JSON &require(std::string_view name) const {
    if (const JSON *value = find(name))
      return *value;
    fail("missing required field '" + std::string(name) + "'");
  }

  /// An error naming the first field (in document order) not in `known`.
  void rejectUnknown(std::initializer_list<std::string_view> known) const {
    for (const auto &item : object.items())
      if (std::find(known.begin(), known.end(), item.key()) == known.end())
        fail("unknown field " + singleQuoted(item.key()));
  }

private:
  const JSON &object;
};

/// The value as an int64 when it is a JSON integer that fits; booleans and
/// numbers written with a fraction or exponent (`8.0`, `1e3`) are not.
inline std::optional<int64_t> toInt64(const JSON &value) {
  if (value.is_number_unsigned()) {
    auto u = value.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
      return std::nullopt;
    return static_cast<int64_t>(u);
  }
  if (value.is_number_integer())
    return value.get<int64_t>();
  return std::nullopt;
}

/// Reads an integer in [1, max], or null when `allowNull`. Values of the
/// wrong kind say "expected a positive integer"; integers above `max`
/// (including those beyond int64, and numbers of 2^63 or more written any
/// way) say "... of at most <max>".
inline std::optional<int64_t>
readPositive(const JSON &value, std::string_view field,
             int64_t max = std::numeric_limits<int64_t>::max(),
             bool allowNull = false) {
  if (allowNull && value.is_null())
    return std::nullopt;
  std::string expected = "a positive integer";
  std::string orNull = allowNull ? " or null" : "";
  // Integers beyond uint64 reach us as floats; treat them like any other
  // integer that is too large rather than as a fraction.
  bool tooLarge =
      (value.is_number_unsigned() &&
       (!toInt64(value) || *toInt64(value) > max)) ||
      (value.is_number_float() && value.get<double>() >= 9223372036854775808.0);
  if (tooLarge)
    failField(field, "expected " + expected + " of at most " +
                         std::to_string(max) + orNull + ", got " +
                         describe(value));
  std::optional<int64_t> number = toInt64(value);
  if (!number || *number <= 0)
    failField(field,
              "expected " + expected + orNull + ", got " + describe(value));
  return number;
}

/// Reads a required positive integer (see `readPositive`).
inline int64_t
readPositiveInt(const JSON &value, std::string_view field,
                int64_t max = std::numeric_limits<int64_t>::max()) {
  return *readPositive(value, field, max);
}

/// Reads `d_model`-like sizes: positive and at most `kMaxDimension`.
inline int64_t readDimension(const JSON &value, std::string_view field) {
  return readPositiveInt(value, field, kMaxDimension);
}

/// Reads an integer in [lo, hi]; `expected` describes the range.
inline int64_t readIntInRange(const JSON &value, std::string_view field,
                              int64_t lo, int64_t hi,
                              std::string_view expected) {
  std::optional<int64_t> number = toInt64(value);
  if (!number || *number < lo || *number > hi)
    failField(field,
              "expected " + std::string(expected) + ", got " + describe(value));
  return *number;
}

/// Reads `true` or `false`.
inline bool readBool(const JSON &value, std::string_view field) {
  if (!value.is_boolean())
    failField(field, "expected a boolean, got " + describe(value));
  return value.get<bool>();
}

/// Reads a finite number > 0 (integer or not), or null when `allowNull`.
inline std::optional<double> readPositiveNumberOrNull(const JSON &value,
                                                      std::string_view field,
                                                      bool allowNull = true) {
  if (allowNull && value.is_null())
    return std::nullopt;
  if (value.is_number()) {
    double number = value.get<double>();
    if (std::isfinite(number) && number > 0)
      return number;
  }
  failField(field, "expected a positive number" +
                       std::string(allowNull ? " or null" : "") + ", got " +
                       describe(value));
}

/// Reads a string; `expected` says what the string should name.
inline std::string readString(const JSON &value, std::string_view field,
                              std::string_view expected) {
  if (!value.is_string())
    failField(field,
              "expected " + std::string(expected) + ", got " + describe(value));
  return value.get<std::string>();
}

/// Checks the rules between the spec §8 fields (and between them and §1's),
/// shared by the layer-spec and Hugging Face readers; throws `InputError`
/// naming the field.
void checkRoutingFamily(const LayerSpec &spec);

/// Runs `body`, which stores its result or throws, and returns the one-line
/// `<source>[:<line>:<col>]: error: <message>` form of a failure (empty on
/// success).
template <typename Body>
std::string errorOf(std::string_view source, Body &&body) {
  try {
    body();
    return std::string();
  } catch (const InputError &e) {
    return std::string(source) + e.location + ": error: " + e.message;
  } catch (const std::exception &e) {
    return std::string(source) + ": error: " + e.what();
  } catch (...) {
    return std::string(source) + ": error: unexpected failure";
  }
}

/// Runs `body`, which returns a LayerSpec or throws, and turns any failure
/// into a SpecResult holding the one-line error.
template <typename Body>
SpecResult guarded(std::string_view source, Body &&body) {
  SpecResult result;
  result.error = errorOf(source, [&] { result.spec = body(); });
  return result;
}

} // namespace moe::spec::detail

#endif // MOE_LIB_SPEC_JSONFIELDS_H
