// SPDX-License-Identifier: BSL-1.0
#pragma once

// Splits a migration script into its statements. The migrator runs them one at
// a time so that a failure can name the statement (DESIGN §8), which means it
// must find statement ends exactly where the database would: a ';' inside a
// string, identifier, comment or routine body is not one.
//
// Each dialect splits where its own shell does, so a script that runs in psql
// or in the sqlite3 shell runs the same way here:
//   - PostgreSQL as psql's lexer: dollar quotes, E'' strings, nested block
//     comments, and no split inside parentheses or a BEGIN ATOMIC body;
//   - SQLite as sqlite3_complete(): [brackets] and `backticks` quote
//     identifiers, and CREATE TRIGGER runs to "; END ;".
//
// The adapters call it (their `migrations().split_script`); the core only
// sees statements.
//
// One pass over the script; nothing is allocated but the result (and the
// message of an error).

#include <sertx/failure.hpp>

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace sertx::detail {

/// The shells whose splitting rules sertx follows; each adapter names its
/// own (`split_as` in its SQL dialect), so the core names none.
enum class sql_dialect { postgresql, sqlite };

/// Thrown by split_statements when a construct is still open at the end of
/// the script. what() names the construct and the line it started on.
class sql_split_error : public sertx::error {
public:
    sql_split_error(std::string_view construct, std::size_t line, std::string_view hint = {})
        : sertx::error(describe(construct, line, hint)), line_(line) {}

    /// The 1-based line on which the unterminated construct started.
    [[nodiscard]] std::size_t line() const noexcept { return line_; }

private:
    static std::string describe(std::string_view construct, std::size_t line,
                                std::string_view hint) {
        std::string text = "sertx: unterminated ";
        text += construct;
        text += " starting on line ";
        text += std::to_string(line);
        if (!hint.empty()) {
            text += "; ";
            text += hint;
        }
        return text;
    }

    std::size_t line_;
};

/// The 1-based line of `script` that byte `offset` lies on; an offset past the
/// end counts as the last line.
[[nodiscard]] inline std::size_t line_of(std::string_view script, std::size_t offset) noexcept {
    std::size_t line = 1;
    for (std::size_t i = 0; i < offset && i < script.size(); ++i) line += script[i] == '\n';
    return line;
}

// The scanner behind split_statements; one object splits one script.
class statement_splitter {
public:
    statement_splitter(std::string_view script, sql_dialect dialect) noexcept
        : script_(script), pg_(dialect == sql_dialect::postgresql) {}

    [[nodiscard]] std::vector<std::string_view> split() && {
        while (pos_ < script_.size()) {
            scan_next();
        }
        finish_script();
        return std::move(statements_);
    }

private:
    static constexpr std::size_t none = std::string_view::npos;

    // How far the leading words match [EXPLAIN ...] CREATE [TEMP] TRIGGER
    // (SQLite) or CREATE [OR REPLACE] FUNCTION|PROCEDURE (PostgreSQL), the
    // only statements whose bodies may hold a ';'.
    enum class header_progress { start, explain, create, create_or, create_or_replace, done };
    enum class statement_kind { plain, sqlite_trigger, pg_routine };
    // sqlite3_complete()'s rule: a trigger ends only at ';' END ';'. END can
    // close the body only as the first word after a ';', which the END of a
    // CASE never is, so CASE needs no counting.
    enum class trigger_phase { body, after_semicolon, after_end };

    struct statement_state {
        std::size_t first = none;  // offset of its first token
        std::size_t end = 0;       // one past its last token
        header_progress header = header_progress::start;
        statement_kind kind = statement_kind::plain;
        trigger_phase phase = trigger_phase::body;
        std::size_t body_at = none;        // BEGIN of a trigger or BEGIN ATOMIC body
        std::size_t paren_depth = 0;       // PostgreSQL only, as psql
        std::size_t paren_at = none;       // the outermost open parenthesis
        std::size_t block_depth = 0;       // BEGIN ATOMIC and CASE nesting in a routine
        std::size_t begin_word_at = none;  // the previous token was the word BEGIN, here
    };

    std::string_view script_;
    bool pg_;
    std::size_t pos_ = 0;
    statement_state st_;
    std::vector<std::string_view> statements_;

    static bool is_space(char c) noexcept {
        return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    }
    static bool is_letter(char c) noexcept {
        // Bytes of UTF-8 sequences are letters to both databases.
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
               static_cast<unsigned char>(c) >= 0x80;
    }
    static bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }
    static bool is_word_char(char c) noexcept { return is_letter(c) || is_digit(c) || c == '$'; }

    static bool is_keyword(std::string_view word, std::string_view lower_keyword) noexcept {
        if (word.size() != lower_keyword.size()) return false;
        for (std::size_t i = 0; i < word.size(); ++i) {
            const char c = word[i];
            if ((c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c) != lower_keyword[i]) return false;
        }
        return true;
    }

    char at(std::size_t i) const noexcept { return i < script_.size() ? script_[i] : '\0'; }

    void scan_next() {
        const char c = script_[pos_];
        const char next = at(pos_ + 1);
        if (is_space(c)) {
            ++pos_;
        } else if (c == '-' && next == '-') {
            skip_line_comment();
        } else if (c == '/' && next == '*') {
            skip_block_comment();
        } else if (c == ';') {
            semicolon();
        } else {
            scan_token(c);
        }
    }

    void scan_token(char c) {
        const std::size_t start = pos_;
        std::string_view word;
        if (c == '\'') {
            skip_quoted('\'', true, false, "string literal");
        } else if (c == '"') {
            skip_quoted('"', true, false, "quoted identifier");
        } else if (!pg_ && c == '[') {
            skip_quoted(']', false, false, "quoted identifier");
        } else if (!pg_ && c == '`') {
            skip_quoted('`', true, false, "quoted identifier");
        } else if (pg_ && c == '$' && skip_dollar_quote()) {
            // pos_ is past the closing delimiter
        } else if (is_word_char(c)) {
            word = scan_word();
            // E'...' is the one PostgreSQL literal in which \' does not end it.
            if (pg_ && (word == "E" || word == "e") && at(pos_) == '\'') {
                skip_quoted('\'', true, true, "escape string literal");
                word = {};
            }
        } else {
            ++pos_;
            if (pg_) {
                track_parenthesis(c, start);
            }
        }
        token(start, word);
    }

    std::string_view scan_word() {
        const std::size_t start = pos_;
        // In PostgreSQL '$' continues an identifier but not a number or a $1
        // parameter, after which it may open a dollar quote.
        const bool dollar_continues = !pg_ || is_letter(script_[pos_]);
        ++pos_;
        while (pos_ < script_.size() && is_word_char(script_[pos_]) &&
               (dollar_continues || script_[pos_] != '$')) {
            ++pos_;
        }
        return script_.substr(start, pos_ - start);
    }

    void skip_line_comment() noexcept {
        while (pos_ < script_.size() && script_[pos_] != '\n') {
            ++pos_;
        }
    }

    void skip_block_comment() {
        // SQLite would let an unterminated comment run to the end of the script
        // silently; in a migration that drops the statements after it, so it
        // is an error in both dialects.
        const std::size_t start = pos_;
        std::size_t depth = 0;
        while (pos_ + 1 < script_.size()) {
            const char c = script_[pos_];
            const char next = script_[pos_ + 1];
            if (c == '/' && next == '*' && (pg_ || depth == 0)) {
                ++depth;
                pos_ += 2;
            } else if (c == '*' && next == '/') {
                pos_ += 2;
                if (--depth == 0) {
                    return;
                }
            } else {
                ++pos_;
            }
        }
        throw sql_split_error("block comment", line_of(script_, start),
                              pg_ ? "PostgreSQL block comments nest, so each /* needs its own */"
                                  : std::string_view{});
    }

    // Skips from the opening quote at pos_ past the closing one. A doubled
    // closing quote stands for itself; a backslash escapes the next byte.
    void skip_quoted(char close, bool doubled_escapes, bool backslash_escapes,
                     std::string_view construct) {
        const std::size_t start = pos_;
        std::size_t i = pos_ + 1;
        while (i < script_.size()) {
            const char c = script_[i];
            if (backslash_escapes && c == '\\') {
                i += 2;
            } else if (c != close) {
                ++i;
            } else if (doubled_escapes && at(i + 1) == close) {
                i += 2;
            } else {
                pos_ = i + 1;
                return;
            }
        }
        throw sql_split_error(construct, line_of(script_, start));
    }

    // $$ or $tag$ where the tag is an identifier without '$'; anything else
    // ($1, a lone $) is not a dollar quote and leaves pos_ alone.
    bool skip_dollar_quote() {
        std::size_t i = pos_ + 1;
        if (i < script_.size() && is_letter(script_[i])) {
            while (i < script_.size() && (is_letter(script_[i]) || is_digit(script_[i]))) {
                ++i;
            }
        }
        if (at(i) != '$') {
            return false;
        }
        const std::string_view delimiter = script_.substr(pos_, i + 1 - pos_);
        const std::size_t close = script_.find(delimiter, i + 1);
        if (close == none) {
            std::string hint = "no closing ";
            hint += delimiter;
            throw sql_split_error("dollar-quoted string", line_of(script_, pos_), hint);
        }
        pos_ = close + delimiter.size();
        return true;
    }

    // psql does not split inside parentheses: CREATE RULE ... DO (a; b) is
    // one statement.
    void track_parenthesis(char c, std::size_t start) noexcept {
        if (c == '(') {
            if (st_.paren_depth++ == 0) {
                st_.paren_at = start;
            }
        } else if (c == ')' && st_.paren_depth > 0) {
            --st_.paren_depth;
        }
    }

    // Every token but a statement-ending ';' comes here; comments and
    // whitespace do not, so they are trimmed from both ends of a statement.
    void token(std::size_t start, std::string_view word) {
        if (st_.first == none) {
            st_.first = start;
        }
        st_.end = pos_;
        if (st_.header != header_progress::done) {
            read_header(word);
        }
        if (st_.kind == statement_kind::sqlite_trigger) {
            follow_trigger(start, word);
        } else if (st_.kind == statement_kind::pg_routine) {
            follow_routine(start, word);
        }
    }

    void read_header(std::string_view word) noexcept {
        st_.header = pg_ ? read_pg_header(word) : read_sqlite_header(word);
    }

    header_progress read_pg_header(std::string_view word) noexcept {
        switch (st_.header) {
        case header_progress::start:
            return is_keyword(word, "create") ? header_progress::create : header_progress::done;
        case header_progress::create:
            if (is_keyword(word, "or")) {
                return header_progress::create_or;
            }
            [[fallthrough]];
        case header_progress::create_or_replace:
            if (is_keyword(word, "function") || is_keyword(word, "procedure")) {
                st_.kind = statement_kind::pg_routine;
            }
            return header_progress::done;
        case header_progress::create_or:
            return is_keyword(word, "replace") ? header_progress::create_or_replace
                                               : header_progress::done;
        default:
            return header_progress::done;
        }
    }

    // The transitions of sqlite3_complete(), repeated TEMP and EXPLAIN
    // prefixes included, so that the shell and sertx agree on every script.
    header_progress read_sqlite_header(std::string_view word) noexcept {
        const bool create = is_keyword(word, "create");
        const bool temp = is_keyword(word, "temp") || is_keyword(word, "temporary");
        const bool trigger = is_keyword(word, "trigger");
        const bool explain = is_keyword(word, "explain");
        switch (st_.header) {
        case header_progress::start:
            return create ? header_progress::create
                   : explain ? header_progress::explain
                             : header_progress::done;
        case header_progress::explain:
            return create ? header_progress::create
                   : explain || temp || trigger || is_keyword(word, "end") ? header_progress::done
                                                                           : header_progress::explain;
        case header_progress::create:
            if (trigger) {
                st_.kind = statement_kind::sqlite_trigger;
            }
            return temp ? header_progress::create : header_progress::done;
        default:
            return header_progress::done;
        }
    }

    void follow_trigger(std::size_t start, std::string_view word) noexcept {
        st_.phase = st_.phase == trigger_phase::after_semicolon && is_keyword(word, "end")
                        ? trigger_phase::after_end
                        : trigger_phase::body;
        if (st_.body_at == none && is_keyword(word, "begin")) {
            st_.body_at = start;
        }
    }

    // A SQL-standard routine body, BEGIN ATOMIC ... END, holds statements and
    // their ';'. Counting BEGIN only when ATOMIC follows lets a routine be
    // named "begin"; a CASE inside the body ends with END too, so it nests.
    void follow_routine(std::size_t start, std::string_view word) noexcept {
        if (st_.paren_depth == 0) {
            if (st_.begin_word_at != none && is_keyword(word, "atomic")) {
                if (st_.block_depth++ == 0) {
                    st_.body_at = st_.begin_word_at;
                }
            } else if (st_.block_depth > 0 && is_keyword(word, "case")) {
                ++st_.block_depth;
            } else if (st_.block_depth > 0 && is_keyword(word, "end")) {
                --st_.block_depth;
            }
        }
        st_.begin_word_at = st_.paren_depth == 0 && is_keyword(word, "begin") ? start : none;
    }

    void semicolon() {
        const std::size_t at_semicolon = pos_++;
        const bool inside_body =
            pg_ ? st_.paren_depth > 0 || st_.block_depth > 0
                : st_.kind == statement_kind::sqlite_trigger && st_.phase != trigger_phase::after_end;
        if (!inside_body) {
            end_statement();
            return;
        }
        token(at_semicolon, {});
        if (st_.kind == statement_kind::sqlite_trigger) {
            st_.phase = trigger_phase::after_semicolon;
        }
    }

    void end_statement() {
        if (st_.first != none) {
            statements_.push_back(script_.substr(st_.first, st_.end - st_.first));
        }
        st_ = statement_state{};
    }

    void finish_script() {
        // While a parenthesis is open nothing else is counted, so it is the
        // construct to report.
        if (st_.paren_depth > 0) {
            throw sql_split_error("parenthesis", line_of(script_, st_.paren_at));
        }
        if (st_.block_depth > 0) {
            throw sql_split_error("BEGIN ATOMIC body", line_of(script_, st_.body_at),
                                  "it needs a closing END");
        }
        if (st_.kind == statement_kind::sqlite_trigger && st_.phase != trigger_phase::after_end) {
            throw sql_split_error("trigger body",
                                  line_of(script_, st_.body_at != none ? st_.body_at : st_.first),
                                  "it needs END after a ';' that ends its last statement");
        }
        end_statement();
    }
};

/// The statements of `script` in order, split at each ';' that ends a
/// statement in `dialect`. Each is a view into `script`, without its ';' and
/// without surrounding whitespace and comments; empty and comment-only
/// statements are dropped, and the last statement needs no ';'.
///
/// Throws sql_split_error if a string literal, quoted identifier, block
/// comment, dollar quote, parenthesis (PostgreSQL), BEGIN ATOMIC body
/// (PostgreSQL) or trigger body (SQLite) is still open at the end.
///
/// PostgreSQL strings follow standard_conforming_strings = on (the default
/// since 9.1): a backslash escapes only inside E'...'.
[[nodiscard]] inline std::vector<std::string_view> split_statements(std::string_view script,
                                                                    sql_dialect dialect) {
    return statement_splitter(script, dialect).split();
}

}  // namespace sertx::detail
